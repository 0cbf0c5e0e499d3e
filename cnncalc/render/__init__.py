"""Reports drawn for people and programs: columns, the terminal (rich), JSON/CSV/Markdown, the
HTML page, the network graph (DOT, Mermaid, SVG), the field figure and the vocabulary."""
