"""The HTML knobs, declared once: the config's settings are the options the extraction process gets."""

from __future__ import annotations

from flows.extract import ExtractConfig, HtmlOptions
from flows.extract.options import HtmlKnobs


def test_the_options_carry_the_configs_html_knobs() -> None:
    config = ExtractConfig(strategy="recall", include_tables=False, justext_min_chars=50, short_text_ratio=2.0)
    options = HtmlOptions.of(config)
    assert {name: getattr(options, name) for name in HtmlKnobs.model_fields} == config.model_dump(
        include=set(HtmlKnobs.model_fields)
    )
    assert (options.markup_fast, options.markup_mode) == (True, "fast")


def test_the_config_keeps_its_settings_in_their_order() -> None:
    assert list(ExtractConfig.model_fields) == [
        "timeout_s", "sandbox", *HtmlKnobs.model_fields, "strip_text_chrome",
    ]
    assert all(field.description for field in ExtractConfig.model_fields.values())
