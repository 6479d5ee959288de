"""The function bench/sdk.py calls through @sandboxed. A module of its own, so
that what the VM imports per call is this file alone, not the benchmark's
imports: the decorator's overhead, not a module's."""


def word_count(text):
    counts = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts
