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
from sedma.compute.plan import Block, PartitionPlan, static_partition
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
    "LambdaDecision",
    "MatvecReport",
    "PartitionPlan",
    "Peripherals",
    "ProgramStats",
    "ProgrammedMatrix",
    "Readout",
    "VerifyConfig",
    "choose_lambda",
    "decide_lambda",
    "get_device",
    "known_devices",
    "load_device",
    "process",
    "program",
    "smooth",
    "static_partition",
]
