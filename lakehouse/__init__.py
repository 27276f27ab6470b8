"""The lakehouse core: domain declarations, transformations, validation, features and the CLI.

It never imports Dagster or BentoML, so the command line and services start fast.
"""


def _feast_without_typeguard() -> None:
    """Make typeguard's @typechecked a no-op, as `python -O` does, before Feast (its only user here) is imported.

    Feast decorates its classes with it, and typeguard re-parses and recompiles every decorated class's
    source at import: about 2 s of each process that uses Feast on these machines (a third of
    `import feast`), paid by every run, CLI call and service start. The checks guard the arguments of
    Feast's constructors, which here come from domain specs validated by lakehouse.declarations.domain.
    """
    import typeguard

    def typechecked(target=None, **_options):
        return target if target is not None else (lambda decorated: decorated)

    typeguard.typechecked = typechecked


_feast_without_typeguard()
