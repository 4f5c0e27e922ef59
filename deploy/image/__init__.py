"""The container image: its entry point and the build script (``deploy/image/build.py``)."""
