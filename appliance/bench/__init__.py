"""The speech benchmark: accuracy and latency of the speech-to-text stage (``voicekey bench``)."""
