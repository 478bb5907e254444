"""The ``hookwise`` command line and the ``hookwise serve`` process supervisor.

Drives ``engine`` (and starts ``web``'s server); ``web`` and ``engine`` never import it.
"""
