"""An Ollama Modelfile for a GGUF export: FROM, the chat TEMPLATE (Ollama's Go template), SYSTEM, stop tokens and
default PARAMETERs.

    chat = ollama_chat(tokenizer)           # OllamaChat(family, template, system, stop); UserError if not convertible
    text = modelfile("demo-q8_0.gguf", chat, num_ctx=4096)

The tokenizer's chat template is Jinja; Ollama's is a Go text/template over `.Messages`. Jinja is not translated
statement by statement: the template is recognised by what it renders. A family (ChatML: Qwen2.5, SmolLM2 and
every `<|im_start|>role` template; Llama 3) is accepted when the tokenizer's template renders a fixed set of probe
conversations (with and without a system message, several turns, with the generation prompt) exactly as that
family's layout does; the default system prompt a template inserts when none is given (SmolLM2's, Qwen2.5's) is
read from its rendering and becomes the Modelfile's SYSTEM, which Ollama inserts as the first message the same way.
Anything else (a template that adds dates or tools to the system turn, an unknown layout) is refused with one line.

Not carried over: tool calls (the Go templates below render plain conversations) and a leading BOS token written as
text (llama.cpp and Ollama add BOS from the GGUF's tokenizer.ggml.add_bos_token).
"""

from __future__ import annotations

from dataclasses import dataclass

from cognitive.errors import UserError

PROBE_TEXTS = ("Hello there.", "What is 2 + 3?", "Thanks. And 4 + 4?", "2 + 3 = 5.", "Be brief.")
SYSTEM_MARKER = "<<system-probe>>"

# Go templates in the style of Ollama's own library templates: every message in turn, then the assistant header
# after a last message that is not the assistant's.
CHATML_TEMPLATE = """\
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""

LLAMA3_TEMPLATE = """\
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}"""


@dataclass(frozen=True)
class Family:
    name: str
    template: str  # Ollama's Go template
    end_of_turn: str  # the token that closes a turn: a stop token

    def render(self, messages: list[dict], add_generation_prompt: bool, system_prefix: str = "") -> str:
        """The family's layout of a conversation (system messages after `system_prefix`), as its Jinja renders it."""

        def content(m: dict) -> str:
            text = m["content"] if self.name == "chatml" else m["content"].strip()  # Llama 3 trims each message
            return system_prefix + text if m["role"] == "system" else text

        if self.name == "chatml":
            text = "".join(f"<|im_start|>{m['role']}\n{content(m)}<|im_end|>\n" for m in messages)
            return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")
        text = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{content(m)}<|eot_id|>" for m in messages)
        return text + ("<|start_header_id|>assistant<|end_header_id|>\n\n" if add_generation_prompt else "")


FAMILIES = (
    Family("chatml", CHATML_TEMPLATE, "<|im_end|>"),
    Family("llama3", LLAMA3_TEMPLATE, "<|eot_id|>"),
)


@dataclass(frozen=True)
class OllamaChat:
    family: str
    template: str
    system: str | None  # the template's default system prompt (None: no system turn unless the user gives one)
    stop: tuple[str, ...]
    system_prefix: str = ""  # text the template puts before every system prompt (Llama 3.1's knowledge-cutoff lines)


def probe_conversations() -> list[tuple[list[dict], bool]]:
    """(messages, add_generation_prompt): one user turn, a system turn, several turns, an assistant turn last."""
    hello, question, follow_up, answer, brief = PROBE_TEXTS
    return [
        ([{"role": "user", "content": question}], True),
        ([{"role": "system", "content": brief}, {"role": "user", "content": hello}], True),
        (
            [
                {"role": "system", "content": brief},
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
                {"role": "user", "content": follow_up},
            ],
            True,
        ),
        ([{"role": "user", "content": question}, {"role": "assistant", "content": answer}], False),
    ]


def ollama_chat(tokenizer, where: str = "the tokenizer") -> OllamaChat:
    """The Ollama form of the tokenizer's chat template; a one-line UserError when it is none of FAMILIES."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"{where} has no chat template (chat_template.jinja or tokenizer_config.json chat_template): "
            "llama.cpp and Ollama would not know how to lay out a conversation"
        )
    renders = []
    for messages, generation in probe_conversations():
        try:
            renders.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation))
        except Exception as e:  # the template raised (e.g. it refuses a system turn): not a layout we can carry over
            raise UserError(
                f"{where}'s chat template cannot be converted to an Ollama template: rendering a probe "
                f"conversation failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from None
    # a BOS the template writes as text is left out: llama.cpp and Ollama add it as a token
    for bos in dict.fromkeys(["", getattr(tokenizer, "bos_token", None) or ""]):
        if not all(r.startswith(bos) for r in renders):
            continue
        stripped = [r[len(bos) :] for r in renders]
        for family in FAMILIES:
            found = match_family(family, stripped)
            if found is None:
                continue
            system, prefix = found
            stop = [family.end_of_turn]
            eos = getattr(tokenizer, "eos_token", None)
            if eos and eos not in stop:
                stop.append(eos)
            return OllamaChat(family.name, go_template(family, prefix, system), system, tuple(stop), prefix)
    first = renders[0][:80].replace("\n", "\\n")
    raise UserError(
        f"{where}'s chat template is not one this export converts to Ollama's Go template (ChatML as in "
        f"Qwen2.5 and SmolLM2, or Llama 3); it renders a user turn as '{first}...'; pass --no_modelfile to "
        "export the GGUF alone (llama.cpp runs its embedded Jinja template with --jinja)"
    )


def match_family(family: Family, renders: list[str]) -> tuple[str | None, str] | None:
    """(default system prompt or None, system prefix) when the probe renderings are this family's layout."""
    probes = probe_conversations()
    default = system_slot(family, renders[0], probes[0][0])  # what fills the system turn when none is given
    given = system_slot(family, renders[1], probes[1][0][1:])  # a given system prompt as rendered
    brief = probes[1][0][0]["content"]
    if given is None or given is False or not given.endswith(brief) or default is False:
        return None
    prefix = given[: len(given) - len(brief)]
    if default is not None and not default.startswith(prefix):
        return None
    if default is None and prefix:
        return None
    system = None if default is None else default[len(prefix) :]
    for (messages, generation), rendered in zip(probes, renders):
        if messages[0]["role"] != "system" and default is not None:
            messages = [{"role": "system", "content": system}, *messages]
        if family.render(messages, generation, prefix) != rendered:
            return None
    return system, prefix


def system_slot(family: Family, rendered: str, messages: list[dict]) -> str | bool | None:
    """What the rendering holds in a system turn placed before `messages`: the text, None (no system turn), or
    False (the rendering is not this family's)."""
    if rendered == family.render(messages, add_generation_prompt=True):
        return None
    with_system = family.render([{"role": "system", "content": SYSTEM_MARKER}, *messages], add_generation_prompt=True)
    before, _, after = with_system.partition(SYSTEM_MARKER)
    if rendered.startswith(before) and rendered.endswith(after) and len(rendered) >= len(before) + len(after):
        return rendered[len(before) : len(rendered) - len(after)]
    return False


def go_template(family: Family, prefix: str, system: str | None) -> str:
    """The family's Go template; with a system prefix, the prefix goes before the first system message, and a
    conversation without one (and no default SYSTEM) gets a system turn holding the prefix alone."""
    if not prefix:
        return family.template
    head, _, rest = family.template.partition("{{ .Content }}")
    prefixed = head + '{{ if and (eq $i 0) (eq .Role "system") }}' + prefix + "{{ end }}{{ .Content }}" + rest
    if system:
        return prefixed
    empty = family.render([{"role": "system", "content": ""}], add_generation_prompt=False, system_prefix=prefix)
    return '{{- if or (not .Messages) (ne (index .Messages 0).Role "system") }}' + empty + "{{ end }}\n" + prefixed


def modelfile(gguf_name: str, chat: OllamaChat, num_ctx: int) -> str:
    """The Modelfile text: FROM ./<gguf>, TEMPLATE, SYSTEM (when the template has a default), PARAMETERs."""
    lines = [
        "# Ollama Modelfile written by cognitive-slm (recipes/export.py): ollama create <name> -f Modelfile",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{chat.template}"""',
    ]
    if chat.system:
        lines.append(f'SYSTEM """{chat.system}"""')
    lines += [f'PARAMETER stop "{token}"' for token in chat.stop]
    lines += [
        "PARAMETER temperature 0",  # greedy, as the project's evaluation decodes
        "PARAMETER repeat_penalty 1",  # off, as in transformers' generate (Ollama's default is 1.1)
        f"PARAMETER num_ctx {num_ctx}",
    ]
    return "\n".join(lines) + "\n"
