"""Four entry points (alpha, beta, gamma, delta) in one package of one distribution.

The package folder is shared, so an error in one module can only be told apart from the others
by the module the failing code belongs to: the fixture of the blame tests. With
CEIR_TEST_BREAK_MULTI set, gamma fails at import and delta's register_commands raises: the
fixture of strict mode reporting every failure at once.
"""
