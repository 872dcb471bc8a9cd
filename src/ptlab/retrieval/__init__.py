"""Dense retrieval, a library: BEIR-format collections, LLM query expansion, teacher/student
encoders (SoftQE's loss and training), a FAISS index, ir-measures metrics and paired statistics.

The SoftQE study that assembles these pieces lives in `ptlab.studies.softqe`;
nothing here imports it.
"""
