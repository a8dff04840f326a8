"""`actk deploy`: the manifest and the pushed image digest -> a target's plan -> apply -> result.

``core`` holds the phases every target shares; each target module (``azure``; Alibaba and
Anthropic later) fills in its cloud's request bodies, status names and error hints.
"""
