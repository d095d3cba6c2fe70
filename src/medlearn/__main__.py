"""``python -m medlearn``: the same command line as the ``medlearn`` script.

Useful where the script is not on ``PATH`` (a venv that is not activated, a scheduler that only knows the
interpreter) and to be sure which Python's medlearn runs.
"""

from medlearn.cli import main

if __name__ == "__main__":
    main()
