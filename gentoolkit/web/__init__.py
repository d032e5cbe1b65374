"""``gentool demo``: the static site and its page (JavaScript, shipped as package data).
"""
