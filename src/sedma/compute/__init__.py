"""Layer 1: memory-guided matrix processing on simulated RRAM crossbars.

``process(A, x, memory=..., options=ComputeOptions(...))`` is the one entry point (Algorithm 1,
lines 1–8); ``program(A, ...)`` gives a :class:`ProgrammedMatrix` to read many times (``pm @ x``).
"""

from sedma.compute.correction import MODES as CORRECTION_MODES
from sedma.compute.correction import smooth
from sedma.compute.crossbar import CrossbarConfig, ProgrammedMatrix, Readout, program
from sedma.compute.devices import PRESETS, Device, get_device, known_devices, load_device
from sedma.compute.energy import Cost, Peripherals
from sedma.compute.engine import ComputeOptions, MatvecReport, process
from sedma.compute.lam import MELISO_LAMBDA, LambdaDecision, choose_lambda, decide_lambda
from sedma.compute.partition import adaptive_partition, search_partition
from sedma.compute.plan import Block, PartitionPlan, static_partition
from sedma.compute.pool import DevicePool, PoolDevice, load_pool
from sedma.compute.workload import WorkloadSignature, classify
from sedma.compute.writeverify import ProgramStats, VerifyConfig

__all__ = [
    "CORRECTION_MODES",
    "MELISO_LAMBDA",
    "PRESETS",
    "Block",
    "ComputeOptions",
    "Cost",
    "CrossbarConfig",
    "Device",
    "DevicePool",
    "LambdaDecision",
    "MatvecReport",
    "PartitionPlan",
    "Peripherals",
    "PoolDevice",
    "ProgramStats",
    "ProgrammedMatrix",
    "Readout",
    "VerifyConfig",
    "WorkloadSignature",
    "adaptive_partition",
    "choose_lambda",
    "classify",
    "decide_lambda",
    "get_device",
    "known_devices",
    "load_device",
    "load_pool",
    "process",
    "program",
    "search_partition",
    "smooth",
    "static_partition",
]
