"""The ``gentool`` command line: the click group, the bodies of its commands, and the tools they run
(bench, quickstart, scaffold, docgen).
"""
