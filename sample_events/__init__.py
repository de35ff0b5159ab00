"""The bundled sample season, shipped as package data (``lottrace.sample_events``).

This file only makes the folder an importable package so ``lottrace demo``
finds the sample files after a plain ``pip install``; see README.md here.
"""
