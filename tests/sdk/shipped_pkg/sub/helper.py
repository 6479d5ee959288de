def triple(x: int) -> int:
    return 3 * x
