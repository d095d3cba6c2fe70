"""Imaging tasks: one file per clinical task (registered in :mod:`medlearn.registry`)."""
