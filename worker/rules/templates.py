"""Message templates with `${field}` placeholders, filled by plain substitution.

`string.Template` only replaces names with text: no attribute access, no
indexing, no format specs, so a template cannot reach into any object. Names
are checked against the known facts when the file is loaded.
"""

from dataclasses import dataclass
from string import Template

from worker.rules.facts import FACT_NAMES


class TemplateInvalid(Exception):
    """The template is malformed or names a field that does not exist."""


@dataclass(frozen=True)
class MessageTemplate:
    source: str
    template: Template

    def render(self, values: dict[str, str]) -> str:
        return self.template.safe_substitute(values)


def compile_template(source: str) -> MessageTemplate:
    """Check `source` for well-formed placeholders that all name known facts."""
    template = Template(source)
    if not template.is_valid():
        raise TemplateInvalid(
            f"{source!r} has a malformed placeholder; write ${{name}}, and $$ for a dollar sign"
        )
    unknown = sorted(set(template.get_identifiers()) - set(FACT_NAMES))
    if unknown:
        raise TemplateInvalid(
            f"{source!r} uses unknown field {', '.join(unknown)}; known: {', '.join(FACT_NAMES)}"
        )
    return MessageTemplate(source, template)
