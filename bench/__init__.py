"""The speech benchmark: accuracy and latency of the speech-to-text stage (``python -m bench``).

Development code, not part of the installed ``voicekey`` package: it lives at the top of the
checkout and runs from there (``make bench``). It uses the product (:mod:`appliance`); the product
never imports it.
"""
