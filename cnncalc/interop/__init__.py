"""Other formats in and out: specs written from PyTorch models and ONNX graphs (`torch_import`,
`onnx_import`, through `spec_writer`), and networks written as PyTorch files or ONNX graphs
(`torch_export`, `onnx_export`). torch is imported only inside functions."""
