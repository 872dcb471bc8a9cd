"""Data: row formats (TRL column names), IO, tokenisation and batching."""
