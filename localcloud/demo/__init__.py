"""The demo: the whole pipeline driven by events alone (``python -m localcloud.demo``)."""
