"""Dense retrieval and the SoftQE study: BEIR-format collections, LLM query
expansion, teacher/student encoders, a FAISS index and ir-measures metrics.

Flow (each step cached by a fingerprint of its inputs):
collections -> expansions -> teacher encoder -> SoftQE student -> index + metrics -> report.
"""
