"""The only home of docker, requests, psutil, pynvml and yaml: the engine, the coordinator, the
hardware, the disk.
"""
