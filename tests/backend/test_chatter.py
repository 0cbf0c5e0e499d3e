"""torch's own chatter stays off the user's screen (issue #24 §3): its loggers' records (fake-tensor
tracebacks), warnings raised inside it and, around the profiler, native writes to file
descriptors 1 and 2 are collected for `-v` instead."""
import logging
import os
import warnings

import pytest
from typer.testing import CliRunner

from cnncalc.backend.chatter import MAX_LINES, captured, current
from cnncalc.cli import app

from conftest import EXAMPLES


def test_loggers_warnings_and_native_writes_are_collected(capfd):
    log: list[str] = []
    with captured(log, fds=True):
        logging.getLogger("torch._subclasses.fake_tensor").error("Traceback (most recent call last):\n  boom")
        warnings.warn("a torch warning", UserWarning, stacklevel=1)
        os.write(1, b"USDT:profiler_start\n")
        os.write(2, b"E1201 native line\n")
        assert current() is log
    out, err = capfd.readouterr()
    assert "USDT" not in out and "E1201" not in err and "boom" not in err
    assert any("Traceback" in line for line in log) and any("a torch warning" in line for line in log)
    assert "USDT:profiler_start" in log and "E1201 native line" in log
    logging.getLogger("torch").error("after: reaches its handlers again")
    assert not any("after" in line for line in log)


def test_a_flood_is_bounded():
    log: list[str] = []
    with captured(log):
        for i in range(10 * MAX_LINES):
            logging.getLogger("torch").error("line %d", i)
    assert len(log) <= MAX_LINES


@pytest.mark.slow
def test_verify_shows_torch_messages_only_with_v():
    import pytest

    pytest.importorskip("torch")
    runner = CliRunner()
    args = ["verify", f"{EXAMPLES}/lenet5.yaml", "--device", "cpu", "--profile", "--repeat", "4", "--warmup", "0",
            "--no-rf-probe"]
    quiet = runner.invoke(app, args)
    assert quiet.exit_code == 0 and "torch's own messages" not in quiet.output and "USDT" not in quiet.output
    loud = runner.invoke(app, [*args, "-v"])
    assert loud.exit_code == 0
    assert ("torch's own messages" in loud.output) == ("USDT" in loud.output or "warning:" in loud.output)


def test_import_keeps_torch_logging_off_the_screen(tmp_path):
    import pytest

    pytest.importorskip("torch")
    model = tmp_path / "chatty.py"
    model.write_text("import logging\nimport torch\n\n\nclass Net(torch.nn.Module):\n"
                     "    def __init__(self):\n        super().__init__()\n        self.conv = torch.nn.Conv2d(3, 4, 3)\n\n"
                     "    def forward(self, x):\n"
                     "        logging.getLogger('torch._subclasses.fake_tensor').error('E1201 fake traceback')\n"
                     "        return self.conv(x)\n")
    runner = CliRunner()
    quiet = runner.invoke(app, ["import", f"{model}:Net", "--input", "3x8x8"])
    assert quiet.exit_code == 0 and "E1201" not in quiet.output and "type: conv2d" in quiet.stdout
    loud = runner.invoke(app, ["import", f"{model}:Net", "--input", "3x8x8", "-v"])
    assert loud.exit_code == 0 and "E1201 fake traceback" in loud.output and "E1201" not in loud.stdout.split("torch's")[0]
