"""Unit tests of the container image's entry point and build script."""
