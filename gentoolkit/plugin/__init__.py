"""The host/plugin contract: hook specifications, the specs plugins register, the plugin manager, the
decode-options declaration and the typed protocols of a family's code.
"""
