"""Texts the quality tests score: good articles in German, French and Japanese, and the seeds."""

from __future__ import annotations

from pathlib import Path

from flows.language import detect_language
from flows.quality import quality_score, quality_signals

SEEDS = sorted((Path(__file__).resolve().parents[2] / "seeds").glob("*.txt"))

GERMAN = """Die Stadt will in den kommenden Jahren deutlich mehr Geld in den Ausbau der Radwege investieren.

Nach Angaben der Verwaltung sollen bis zum Jahr 2030 insgesamt rund 40 Kilometer neue Wege entstehen, \
die vor allem die äußeren Stadtteile besser mit dem Zentrum verbinden. Der Gemeinderat hatte den Plan am \
Dienstagabend mit großer Mehrheit beschlossen.

Kritik kam von den Einzelhändlern in der Innenstadt. Sie befürchten, dass durch den Wegfall von Parkplätzen \
weniger Kunden mit dem Auto kommen. Die Verwaltung verweist dagegen auf Erfahrungen aus anderen Städten, in \
denen die Umsätze nach dem Umbau sogar gestiegen seien.

Ein erster Abschnitt soll bereits im Frühjahr fertig werden. Die Kosten für das gesamte Projekt werden auf \
etwa 25 Millionen Euro geschätzt, von denen das Land einen großen Teil übernehmen will."""

FRENCH = """Le gouvernement a présenté mercredi un projet de loi destiné à simplifier les démarches des petites \
entreprises, une promesse faite depuis plusieurs années par le président.

Selon le ministre de l'Économie, le texte doit permettre de réduire le nombre de formulaires à remplir et \
de raccourcir les délais de paiement des factures. Les organisations patronales ont salué une avancée, tout \
en regrettant que certaines mesures ne s'appliquent qu'à partir de 2026.

Les syndicats, de leur côté, craignent que ces changements se fassent au détriment de la protection des \
salariés. Le texte sera examiné à l'Assemblée nationale au début du mois prochain, avant d'être transmis \
au Sénat pour une seconde lecture."""

JAPANESE = """市は来年度から、市内すべての小学校で給食の無償化を始めると発表した。

市長は記者会見で、物価の上昇が続くなかで子育て世帯の負担を少しでも軽くしたいと説明した。\
必要な費用は年間およそ十二億円で、国の交付金と市の基金を使ってまかなうという。

保護者からは歓迎する声が多く聞かれた一方で、財源が長く続くのかを心配する意見もあった。\
市は今後、中学校への拡大についても検討を進める方針だ。"""


def signals_of(text: str) -> dict[str, float]:
    """The signals of a text, with the language the pipeline would give it."""
    lang, conf = detect_language(text)
    return quality_signals(text, lang, conf)


def score_of(text: str) -> float:
    """The quality score of a text, with the language the pipeline would give it."""
    lang, conf = detect_language(text)
    return quality_score(quality_signals(text, lang, conf), lang)
