"""`ptlab serve`: an OpenAI-compatible server for any ptlab / Hugging Face model, with fault injection."""

from ptlab.synth.serve.faults import FaultInjector
from ptlab.synth.serve.responders import CannedResponder, EchoResponder, ModelResponder
from ptlab.synth.serve.server import OpenAIServer

__all__ = ["CannedResponder", "EchoResponder", "FaultInjector", "ModelResponder", "OpenAIServer"]
