"""The pieces of the GGUF export that need no converter: the chat template recognised and written as Ollama's Go
template, the Modelfile, the quant list, the disk estimate, the model card section."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cognitive.errors import UserError
from cognitive.release.export import DISK_BYTES_PER_PARAM, estimate_bytes, parse_quants
from cognitive.release.model_card import GGUF_HEADING, with_gguf_section
from cognitive.release.ollama import CHATML_TEMPLATE, LLAMA3_TEMPLATE, modelfile, ollama_chat

# Llama 3's template (Meta-Llama-3-8B-Instruct): BOS written as text, each message trimmed, no default system turn
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# ChatML with a default system prompt, as Qwen2.5's template renders a conversation without tools
QWEN_LIKE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>"
    "\n' }}{%- endif %}{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
# Llama 3.1's system preamble: always a system turn, the knowledge-cutoff lines before the user's system prompt
LLAMA31_LIKE = (
    "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\n\n' }}{{- 'Cutting Knowledge Date: December 2023\n\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}{%- for message in messages %}{{- '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)


@pytest.fixture
def tokenizer(embedded_tokenizer):
    original = embedded_tokenizer.chat_template, embedded_tokenizer.bos_token
    yield embedded_tokenizer
    embedded_tokenizer.chat_template, embedded_tokenizer.bos_token = original


def test_smollm2_template_is_chatml_with_its_default_system_prompt(tokenizer):
    chat = ollama_chat(tokenizer)
    assert chat.family == "chatml" and chat.template == CHATML_TEMPLATE and chat.system_prefix == ""
    assert chat.system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert chat.stop == ("<|im_end|>",)


def test_qwen_and_llama3_templates(tokenizer):
    tokenizer.chat_template = QWEN_LIKE
    chat = ollama_chat(tokenizer)
    assert chat.family == "chatml" and chat.system.startswith("You are Qwen, created by Alibaba Cloud.")

    tokenizer.chat_template, tokenizer.bos_token = LLAMA3, "<|begin_of_text|>"
    chat = ollama_chat(tokenizer)
    assert chat.family == "llama3" and chat.template == LLAMA3_TEMPLATE and chat.system is None
    assert chat.stop[0] == "<|eot_id|>"

    tokenizer.chat_template = LLAMA31_LIKE
    chat = ollama_chat(tokenizer)
    assert (
        chat.family == "llama3"
        and chat.system == ""
        and chat.system_prefix == "Cutting Knowledge Date: December 2023\n\n"
    )
    # a conversation without a system turn still gets one holding the preamble; a given one gets it first
    assert chat.template.startswith('{{- if or (not .Messages) (ne (index .Messages 0).Role "system") }}')
    assert (
        '{{ if and (eq $i 0) (eq .Role "system") }}Cutting Knowledge Date: December 2023\n\n{{ end }}' in chat.template
    )


@pytest.mark.parametrize(
    "template, words",
    [
        ("{{ raise_exception('System role not supported') }}", ["rendering a probe conversation failed"]),
        (
            "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}",
            ["not one this export", "--no_modelfile"],
        ),
        # a ChatML template that drops earlier assistant turns (as Qwen3 drops their reasoning) is refused too
        (
            "{% for m in messages %}{% if m['role'] != 'assistant' or loop.last %}<|im_start|>{{ m['role'] }}\n"
            "{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
            "{% endif %}",
            ["not one this export"],
        ),
    ],
)
def test_templates_it_cannot_convert_are_refused_in_one_line(tokenizer, template, words):
    tokenizer.chat_template = template
    with pytest.raises(UserError) as error:
        ollama_chat(tokenizer, where="release/x's tokenizer")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("release/x's tokenizer") and all(w in message for w in words), message


def test_no_chat_template_is_refused(tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(UserError, match="has no chat template"):
        ollama_chat(tokenizer)


def test_modelfile(tokenizer):
    text = modelfile("demo-q8_0.gguf", ollama_chat(tokenizer), num_ctx=4096)
    lines = text.splitlines()
    assert "FROM ./demo-q8_0.gguf" in lines
    assert f'TEMPLATE """{CHATML_TEMPLATE}"""' in text
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines
    assert {"PARAMETER temperature 0", "PARAMETER repeat_penalty 1", "PARAMETER num_ctx 4096"} <= set(lines)


def test_quant_list_and_disk_estimate():
    assert parse_quants("q8_0") == ["q8_0"]
    assert parse_quants("Q8_0, q4_k_m,q8_0") == ["q8_0", "q4_k_m"]
    for bad in ("", "q5_k", "q8_0,,fp32"):
        with pytest.raises(UserError, match="choose from f16, q8_0, q4_k_m"):
            parse_quants(bad)
    n = 1_000_000
    assert estimate_bytes(n, ["q8_0"]) == int(DISK_BYTES_PER_PARAM["q8_0"] * n * 1.05)
    # q4_k_m is quantized from an f16 file, on disk until it is done
    assert estimate_bytes(n, ["q4_k_m"]) == int((DISK_BYTES_PER_PARAM["q4_k_m"] + 2.0) * n * 1.05)
    assert estimate_bytes(n, ["f16", "q4_k_m"]) == estimate_bytes(n, ["q4_k_m"])


def test_model_card_section_is_added_once_and_replaced():
    report = SimpleNamespace(
        name="demo",
        out="release/demo/gguf",
        quants=["q8_0", "q4_k_m"],
        converter="conv",
        quantizer="quant",
        files={
            "q8_0": {"file": "demo-q8_0.gguf", "bytes": 145e6},
            "q4_k_m": {"file": "demo-q4_k_m.gguf", "bytes": 1e8},
        },
        modelfiles={"q8_0": "Modelfile", "q4_k_m": "Modelfile.q4_k_m"},
    )
    card = "# demo\n\n## Model\n\ntext\n\n## How to load\n\ncode\n"
    once = with_gguf_section(card, report)
    assert once.startswith(card.rstrip("\n")) and once.count(GGUF_HEADING) == 1
    for expected in (
        "| `gguf/demo-q8_0.gguf` | q8_0 | 145.0 MB |",
        "llama-cli -m gguf/demo-q8_0.gguf --temp 0",
        "llama-server -m gguf/demo-q8_0.gguf --port 8080",
        "ollama create demo -f gguf/Modelfile",
        "ollama create demo:q4_k_m -f gguf/Modelfile.q4_k_m",
        "ollama run demo",
    ):
        assert expected in once, expected
    report.files["q8_0"]["bytes"] = 150e6
    twice = with_gguf_section(once + "\n## Later section\n\nkept\n", report)
    assert twice.count(GGUF_HEADING) == 1 and "150.0 MB" in twice and "145.0 MB" not in twice
    assert "## Later section\n\nkept" in twice and "## How to load\n\ncode" in twice
