"""One exception type whose message is the single line a user sees."""


class WebbflowError(Exception):
    """A problem with an input file, a reference or the configuration.

    The message names the file (or exposure) and the problem on one line, so the
    workflow can report it once without a traceback from inside a library.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
