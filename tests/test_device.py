"""select_device: explicit choice, the Spark task's GPU, CUDA, then CPU."""

from __future__ import annotations

import logging

import pytest
import torch
from pyspark import TaskContext
from pyspark.resource import ResourceInformation

from smar.single_modal.rankers.device import select_device


class _FakeTaskContext:
    """Stands in for a Spark task's context; holds the resources Spark assigned to the task."""

    def __init__(self, resources: dict[str, ResourceInformation]) -> None:
        self._resources = resources

    def resources(self) -> dict[str, ResourceInformation]:
        return self._resources


def _inside_task(monkeypatch: pytest.MonkeyPatch, resources: dict[str, ResourceInformation]):
    monkeypatch.setattr(TaskContext, "get", classmethod(lambda cls: _FakeTaskContext(resources)))


def _outside_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TaskContext, "get", classmethod(lambda cls: None))


def _cuda(monkeypatch: pytest.MonkeyPatch, *, available: bool, count: int = 0) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_explicit_cpu_wins_over_a_task_gpu(monkeypatch):
    # Given a Spark task holding GPU 1 on a machine with CUDA
    _inside_task(monkeypatch, {"gpu": ResourceInformation("gpu", ["1"])})
    _cuda(monkeypatch, available=True, count=2)
    # When the caller asks for the CPU / Then it gets the CPU
    assert select_device("cpu") == torch.device("cpu")


def test_explicit_cuda_index_is_kept(monkeypatch):
    # Given two visible CUDA devices and no task
    _outside_task(monkeypatch)
    _cuda(monkeypatch, available=True, count=2)
    # When / Then the requested ordinal comes back unchanged
    assert select_device("cuda:1") == torch.device("cuda", 1)


def test_explicit_cuda_without_cuda_is_an_error_not_a_fallback(monkeypatch):
    # Given no CUDA
    _cuda(monkeypatch, available=False)
    # When asking for cuda:0 / Then a clear error instead of a silent CPU run
    with pytest.raises(ValueError, match="no CUDA device"):
        select_device("cuda:0")


def test_explicit_cuda_index_out_of_range_is_an_error(monkeypatch):
    _cuda(monkeypatch, available=True, count=1)
    with pytest.raises(ValueError, match="only 1 are visible"):
        select_device("cuda:3")


def test_unknown_device_string_is_refused():
    with pytest.raises(ValueError, match="device must be"):
        select_device("gpu-please")


def test_auto_inside_a_task_uses_the_task_gpu_address(monkeypatch):
    # Given a Spark task that was assigned GPUs 1 and 0 (in that order)
    _inside_task(monkeypatch, {"gpu": ResourceInformation("gpu", ["1", "0"])})
    _cuda(monkeypatch, available=True, count=2)
    # When / Then the first assigned address is used
    assert select_device() == torch.device("cuda", 1)


def test_auto_inside_a_task_without_gpu_resource_falls_to_cuda_then_cpu(monkeypatch):
    # Given a task with no "gpu" resource
    _inside_task(monkeypatch, {})
    # When CUDA is there / Then cuda:0; when not / Then cpu
    _cuda(monkeypatch, available=True, count=1)
    assert select_device() == torch.device("cuda", 0)
    _cuda(monkeypatch, available=False)
    assert select_device() == torch.device("cpu")


def test_auto_task_gpu_but_no_cuda_runs_on_cpu_with_a_warning(monkeypatch, caplog):
    # Given a task assigned GPU 0 but a CPU-only torch
    _inside_task(monkeypatch, {"gpu": ResourceInformation("gpu", ["0"])})
    _cuda(monkeypatch, available=False)
    # When
    with caplog.at_level(logging.WARNING, logger="smar.single_modal.rankers.device"):
        device = select_device("auto")
    # Then the CPU, and the fallback is logged, not silent
    assert device == torch.device("cpu")
    assert "assigned GPU 0" in caplog.text


def test_auto_outside_a_task_prefers_cuda_else_cpu(monkeypatch):
    _outside_task(monkeypatch)
    _cuda(monkeypatch, available=True, count=1)
    assert select_device() == torch.device("cuda", 0)
    _cuda(monkeypatch, available=False)
    assert select_device() == torch.device("cpu")


def test_auto_task_gpu_address_beyond_visible_devices_is_an_error(monkeypatch):
    # Given Spark says GPU 3 but this process sees only one device (isolation mismatch)
    _inside_task(monkeypatch, {"gpu": ResourceInformation("gpu", ["3"])})
    _cuda(monkeypatch, available=True, count=1)
    with pytest.raises(ValueError, match="Spark task GPU address '3'"):
        select_device()
