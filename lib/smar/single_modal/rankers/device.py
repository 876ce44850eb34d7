"""Pick the torch device for scoring and training: the Spark task's GPU, else CUDA, else CPU."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

#: The Spark resource name that GPU scheduling uses (`spark.task.resource.gpu.amount`).
SPARK_GPU_RESOURCE = "gpu"


def _spark_task_gpu_address() -> str | None:
    """The first GPU address Spark assigned to the running task, or None outside a GPU task."""
    try:
        from pyspark import TaskContext
    except ImportError:  # pyspark is optional for library users who only train locally
        return None
    context = TaskContext.get()
    if context is None:  # driver, plain Python, or an engine without task contexts
        return None
    gpu = context.resources().get(SPARK_GPU_RESOURCE)
    if gpu is None or not gpu.addresses:
        return None
    return str(gpu.addresses[0])


def select_device(preferred: str | torch.device = "auto") -> torch.device:
    """The device to run on.

    An explicit `preferred` ("cpu", "cuda", "cuda:N") wins and is checked, never silently replaced.
    With "auto": the GPU that Spark assigned to the current task (`TaskContext.resources()["gpu"]`),
    else `cuda:0` when CUDA is available, else the CPU. A Spark task that was given a GPU on a
    machine where torch sees no CUDA runs on the CPU with a logged warning.
    """
    if isinstance(preferred, torch.device):
        preferred = str(preferred)
    if preferred != "auto":
        try:
            device = torch.device(preferred)
        except RuntimeError as error:
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {preferred!r}") from error
        if device.type == "cuda":
            _check_cuda_index(device.index or 0, requested=preferred)
        return device

    address = _spark_task_gpu_address()
    if address is not None:
        if not torch.cuda.is_available():
            logger.warning(
                "Spark assigned GPU %s to this task but torch sees no CUDA device; using the CPU",
                address,
            )
            return torch.device("cpu")
        try:
            index = int(address)
        except ValueError as error:
            raise ValueError(f"Spark task GPU address {address!r} is not a CUDA device ordinal") from error
        _check_cuda_index(index, requested=f"Spark task GPU address {address!r}")
        return torch.device("cuda", index)

    if torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def _check_cuda_index(index: int, *, requested: str) -> None:
    """ValueError when CUDA is missing or `index` is not one of the visible CUDA devices."""
    if not torch.cuda.is_available():
        raise ValueError(f"{requested} asks for CUDA, but torch sees no CUDA device")
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        raise ValueError(
            f"{requested} asks for CUDA device {index}, but only {count} are visible "
            "(check CUDA_VISIBLE_DEVICES against Spark's GPU discovery script)"
        )
