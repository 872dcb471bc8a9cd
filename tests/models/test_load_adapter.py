"""A LoRA run's final/ (adapters only) loads as its base with the adapters merged: what a LoRA study cell evaluates."""

import torch


def test_adapter_directory_loads_merged(tmp_path):
    from peft import LoraConfig, get_peft_model

    from ptlab.models import load, resolve
    from ptlab.models.registry import check_name

    base_dir = resolve("tiny-test")
    model, tok = load(str(base_dir))
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    ids = tok(["Question: 2 + 2?\nAnswer:\n"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = peft(input_ids=ids).logits
    out = tmp_path / "final"
    peft.save_pretrained(out)
    tok.save_pretrained(out)
    check_name(str(out))  # an adapter directory is a model directory
    merged, _ = load(str(out))
    with torch.no_grad():
        got = merged(input_ids=ids).logits
    base_logits = load(str(base_dir))[0](input_ids=ids).logits.detach()
    assert torch.allclose(got, expected, atol=1e-4) and not torch.allclose(got, base_logits, atol=1e-3)
