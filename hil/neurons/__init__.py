"""Neurons: the backend interface and its implementations (simulator, measured curves, the station's
devices), and the torch layers that put them into a network."""

from hil.neurons.backend import DEFAULT_PULSE_S, BackendError, NeuronBackend, torch_device
from hil.neurons.layers import IdealStochasticNeurons, NeuronConfig, SigmoidNeurons, StochasticNeurons
from hil.neurons.measured import ReplayBackend, measure_curves, sweep_currents
from hil.neurons.simulated import SimBackend, virtual_chip_mapping

__all__ = ["DEFAULT_PULSE_S", "BackendError", "IdealStochasticNeurons", "NeuronBackend", "NeuronConfig",
           "ReplayBackend", "SigmoidNeurons", "SimBackend", "StochasticNeurons", "measure_curves", "sweep_currents",
           "torch_device", "virtual_chip_mapping"]
