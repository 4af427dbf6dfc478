"""Tests on the real data in ../shared/data, DDP, the browser, subprocess servers and whole CLI runs."""
