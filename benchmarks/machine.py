"""Name the machine a benchmark number was measured on."""
from __future__ import annotations

import os
import platform


def describe_machine() -> dict[str, object]:
    import torch

    info: dict[str, object] = {
        "host": platform.node(), "platform": platform.platform(),
        "processor": _cpu_model(), "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
