"""`ptlab serve`: an OpenAI-compatible server for any ptlab / Hugging Face model, with fault injection."""

from ptlab.synth.serve.errors import ApiError
from ptlab.synth.serve.faults import FaultInjector
from ptlab.synth.serve.responders import CannedResponder, EchoResponder, ModelResponder
from ptlab.synth.serve.server import OpenAIServer
from ptlab.synth.serve.validate import Limits

__all__ = ["ApiError", "CannedResponder", "EchoResponder", "FaultInjector", "Limits", "ModelResponder",
           "OpenAIServer"]
