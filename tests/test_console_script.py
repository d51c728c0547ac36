from fhir_pain import cli


def test_help_lists_every_subcommand(capsys):
    parser = cli.build_parser()
    help_text = parser.format_help()
    for name in ("serve", "evaluate", "poll", "demo"):
        assert name in help_text
