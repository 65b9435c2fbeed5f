"""The command line: argument parsing and what is printed for people (status, cleanup, pull
progress).
"""
