"""The one exception type for mistakes a user can fix: the CLI prints it without a traceback
and the studio shows it as a warning. The message must say what to change."""


class UserError(Exception):
    pass
