"""Writes the sample dataset data/train.jsonl + data/valid.jsonl (run from the
repository root: `python3 data/make_dataset.py`; deterministic).

One topic (houseplant care), one system prompt, and one distinctive answer
style that a small model picks up in a few minutes of LoRA training: every
answer opens with "Leafy here!", gives the answer in one or two sentences,
then a "- Do:" line and an "- Avoid:" line, and closes with "Happy growing!".
The facts come from the table below (watering, light, pet safety per the
ASPCA lists, propagation, common problems, repotting, feeding, humidity).
"""
import json
import os
import random

SYSTEM = "You are Leafy, a friendly houseplant care assistant. Answer briefly."
OPEN, CLOSE = "Leafy here!", "Happy growing!"

# name, water, light, toxic (None = safe), propagation, trouble (symptom, cause, fix), repot, feed, humidity
PLANTS = [
    dict(name="snake plant", water="only when the soil has dried out completely, about every 2 to 3 weeks",
         light="bright, indirect light, though it tolerates low light well",
         toxic="saponins, which can cause vomiting and drooling",
         prop="from leaf cuttings rooted in water or soil, or by dividing the rhizomes",
         trouble=("soft, yellow leaves", "overwatering and root rot",
                  "let the soil dry out fully and cut away any mushy roots"),
         repot="every 3 to 5 years, when the roots crowd or crack the pot, into a free-draining cactus mix",
         feed="a diluted balanced fertilizer once a month in spring and summer only",
         humidity="normal room humidity; it does not need misting"),
    dict(name="pothos", water="when the top inch of soil is dry, usually about once a week",
         light="medium to bright indirect light; it survives low light but grows slowly and loses variegation",
         toxic="insoluble calcium oxalate crystals, which irritate the mouth and cause drooling",
         prop="from stem cuttings with at least one node, rooted in a glass of water",
         trouble=("yellow leaves", "too much water or a pot without drainage",
                  "water only when the top inch is dry and use a pot with drainage holes"),
         repot="every 1 to 2 years in spring, one pot size up, in regular potting mix",
         feed="a balanced liquid fertilizer at half strength once a month from spring to early autumn",
         humidity="average room humidity, though it grows faster with a little more"),
    dict(name="peace lily", water="when the top inch of soil is dry; it droops dramatically when thirsty",
         light="low to medium indirect light, away from direct sun",
         toxic="calcium oxalate crystals, which cause mouth pain and drooling (it is not a true lily)",
         prop="by dividing the clump into sections that each have roots and leaves",
         trouble=("brown leaf tips", "dry air or salts and chlorine in tap water",
                  "use filtered or rested tap water and raise the humidity"),
         repot="every 1 to 2 years in spring, when roots fill the pot, in rich potting mix",
         feed="a balanced fertilizer at half strength every 6 weeks in spring and summer",
         humidity="higher humidity, around 50% or more; a pebble tray helps"),
    dict(name="ZZ plant", water="only when the soil is completely dry, about every 2 to 3 weeks",
         light="low to bright indirect light; it is one of the best plants for dim rooms",
         toxic="calcium oxalate crystals, which irritate the mouth and stomach",
         prop="by dividing the rhizomes, or by rooting single leaflets in soil (slow, several months)",
         trouble=("yellow, collapsing stems", "overwatering, which rots the rhizomes",
                  "stop watering, check the rhizomes and repot into dry, gritty mix"),
         repot="every 2 to 3 years, when the rhizomes bulge against the pot, in a free-draining mix",
         feed="a diluted balanced fertilizer two or three times during spring and summer",
         humidity="ordinary room humidity; it does not need misting"),
    dict(name="spider plant", water="when the top inch of soil is dry, about once a week in summer",
         light="bright, indirect light", toxic=None,
         prop="from the baby plantlets on its runners, rooted in soil or water",
         trouble=("brown leaf tips", "fluoride and chlorine in tap water, or dry soil",
                  "water with rainwater or filtered water and do not let it dry out completely"),
         repot="every 1 to 2 years, when the thick roots push up out of the soil",
         feed="a balanced liquid fertilizer once a month in spring and summer",
         humidity="average room humidity is fine"),
    dict(name="monstera", water="when the top 2 inches of soil are dry, usually every 1 to 2 weeks",
         light="bright, indirect light; more light means more leaf splits",
         toxic="calcium oxalate crystals, which cause mouth irritation and drooling",
         prop="from stem cuttings that include a node and ideally an aerial root",
         trouble=("leaves without splits", "too little light",
                  "move it closer to a bright window, out of harsh direct sun"),
         repot="every 2 years in spring, with a chunky aroid mix and a moss pole for support",
         feed="a balanced liquid fertilizer once a month during the growing season",
         humidity="moderate to high humidity, 50% to 60% is ideal"),
    dict(name="fiddle leaf fig", water="when the top 2 inches of soil are dry, usually every 7 to 10 days",
         light="lots of bright, indirect light, with a little gentle morning sun",
         toxic="an irritating milky sap that upsets the mouth and stomach",
         prop="from stem cuttings in water or by air layering",
         trouble=("dropping leaves", "a move, cold drafts or uneven watering",
                  "keep it in one bright spot away from vents and water on a steady schedule"),
         repot="every 1 to 2 years in spring, only one pot size up",
         feed="a fertilizer made for figs or a balanced one, monthly in spring and summer",
         humidity="moderate humidity; keep it away from heaters"),
    dict(name="aloe vera", water="deeply, then only once the soil is completely dry, about every 3 weeks",
         light="bright light with a few hours of direct sun",
         toxic="saponins and anthraquinones, which cause vomiting and diarrhea",
         prop="from the offsets (pups) that grow around its base",
         trouble=("thin, floppy leaves", "too little light",
                  "give it a sunny windowsill and water less often"),
         repot="every 2 to 3 years, in a terracotta pot with cactus and succulent mix",
         feed="a cactus fertilizer two or three times in spring and summer",
         humidity="dry air; it does not need any extra humidity"),
    dict(name="jade plant", water="when the soil is dry all the way down, about every 2 to 3 weeks",
         light="bright light with at least four hours of direct sun",
         toxic="compounds that cause vomiting and a slow heart rate in pets",
         prop="from a single leaf or a stem cutting left to callus for a few days before planting",
         trouble=("wrinkled leaves", "underwatering",
                  "give it a deep soak and let the excess drain away"),
         repot="every 2 to 3 years, in a heavy pot with gritty succulent mix",
         feed="a diluted succulent fertilizer every 2 months in spring and summer",
         humidity="normal indoor humidity; dry air suits it"),
    dict(name="Boston fern", water="often enough to keep the soil evenly moist, never soggy",
         light="bright, indirect light", toxic=None,
         prop="by dividing the root ball or potting up the runners",
         trouble=("crispy, brown fronds", "dry air or soil that dried out",
                  "keep the soil moist and raise the humidity with a tray or humidifier"),
         repot="every year or two in spring, when the roots fill the pot",
         feed="a diluted balanced fertilizer once a month in spring and summer",
         humidity="high humidity, ideally above 50%; bathrooms suit it well"),
    dict(name="rubber plant", water="when the top 1 to 2 inches of soil are dry",
         light="bright, indirect light; dark varieties tolerate a little less",
         toxic="a milky sap that irritates the mouth, skin and stomach",
         prop="from stem cuttings or by air layering",
         trouble=("leaves dropping from the bottom", "overwatering or a sudden cold draft",
                  "let the soil dry more between waterings and keep it warm"),
         repot="every 1 to 2 years in spring, in well-draining potting mix",
         feed="a balanced liquid fertilizer once a month in spring and summer",
         humidity="average humidity; wipe the big leaves so they stay dust free"),
    dict(name="Chinese money plant", water="when the top inch of soil is dry, about once a week",
         light="bright, indirect light; rotate it weekly so it grows straight", toxic=None,
         prop="from the small pups that appear around its base, cut off with a bit of root",
         trouble=("curling, domed leaves", "too much direct light or too little",
                  "give it bright but indirect light and keep rotating it"),
         repot="every year in spring, in a free-draining potting mix",
         feed="a balanced fertilizer at half strength once a month in spring and summer",
         humidity="average room humidity is fine"),
    dict(name="calathea", water="with filtered or rain water, keeping the soil evenly moist",
         light="medium, indirect light; direct sun fades and scorches its leaves", toxic=None,
         prop="by dividing the clump in spring, each part with its own roots",
         trouble=("crispy leaf edges", "dry air or minerals in tap water",
                  "switch to filtered water and raise the humidity"),
         repot="every 1 to 2 years in spring, in a mix that holds moisture but drains",
         feed="a diluted balanced fertilizer once a month in spring and summer",
         humidity="high humidity, above 50%; it sulks in dry air"),
    dict(name="heartleaf philodendron", water="when the top inch of soil is dry, about once a week",
         light="medium to bright indirect light",
         toxic="calcium oxalate crystals, which irritate the mouth and throat",
         prop="from stem cuttings with a node, rooted in water or moist soil",
         trouble=("small leaves and long bare stems", "too little light",
                  "move it to brighter indirect light and pinch back the long vines"),
         repot="every 1 to 2 years, when roots circle the pot",
         feed="a balanced liquid fertilizer once a month from spring to early autumn",
         humidity="average humidity, though it enjoys more"),
    dict(name="English ivy", water="when the top of the soil just starts to dry, keeping it lightly moist",
         light="bright, indirect light",
         toxic="saponins, which cause vomiting, drooling and diarrhea",
         prop="from stem cuttings a few inches long, rooted in water",
         trouble=("fine webbing and speckled leaves", "spider mites, which love dry air",
                  "rinse the leaves in the shower and raise the humidity"),
         repot="every 2 years in spring, in regular potting mix",
         feed="a balanced fertilizer once a month in spring and summer",
         humidity="moderate humidity; dry, warm rooms invite spider mites"),
    dict(name="parlor palm", water="when the top inch of soil is dry",
         light="low to medium indirect light", toxic=None,
         prop="from seed, or by carefully dividing a pot of several stems",
         trouble=("brown frond tips", "dry air or uneven watering",
                  "water on a steady schedule and raise the humidity a little"),
         repot="every 2 to 3 years; it likes being slightly root bound",
         feed="a diluted balanced fertilizer once a month in spring and summer",
         humidity="average to high humidity"),
    dict(name="Christmas cactus", water="when the top inch of soil is dry; it likes more water than desert cacti",
         light="bright, indirect light", toxic=None,
         prop="from cuttings of two or three stem segments, planted upright in moist mix",
         trouble=("dropping flower buds", "moving it or sudden changes in temperature",
                  "leave it in one spot once buds form and keep it away from drafts"),
         repot="every 2 to 3 years after flowering; it blooms best slightly root bound",
         feed="a balanced fertilizer once a month from spring to late summer",
         humidity="moderate humidity"),
    dict(name="moth orchid", water="about once a week, when the bark is nearly dry, by soaking and draining",
         light="bright, indirect light, such as an east window", toxic=None,
         prop="from the keikis (baby plants) that sometimes grow on the flower spike",
         trouble=("wrinkled, limp leaves", "root rot or underwatering",
                  "check the roots: firm green roots are healthy, mushy brown ones must be cut off"),
         repot="every 1 to 2 years after flowering, in fresh orchid bark",
         feed="an orchid fertilizer at quarter strength every other watering",
         humidity="around 50% to 70% humidity"),
    dict(name="African violet", water="from below with room-temperature water, keeping the leaves dry",
         light="bright, indirect light", toxic=None,
         prop="from a single leaf with its stalk, planted in moist mix",
         trouble=("pale spots on the leaves", "cold water splashed on the leaves",
                  "water from below with room-temperature water"),
         repot="once a year, in African violet mix, keeping the pot small",
         feed="an African violet fertilizer at quarter strength with every watering",
         humidity="moderate humidity, around 50%"),
    dict(name="dragon tree", water="when the top 2 inches of soil are dry",
         light="medium to bright indirect light",
         toxic="saponins, which cause vomiting and drooling",
         prop="from stem cuttings, rooted in water or soil",
         trouble=("brown leaf tips", "fluoride in tap water",
                  "water with filtered or rain water"),
         repot="every 2 to 3 years in spring",
         feed="a diluted balanced fertilizer once a month in spring and summer",
         humidity="average room humidity"),
    dict(name="baby rubber plant", water="when the top half of the soil is dry",
         light="medium to bright indirect light", toxic=None,
         prop="from stem or leaf cuttings, rooted in moist soil",
         trouble=("droopy, mushy stems", "overwatering",
                  "let more of the soil dry out between waterings"),
         repot="every 2 to 3 years; its roots are small",
         feed="a diluted balanced fertilizer once a month in spring and summer",
         humidity="average room humidity"),
    dict(name="zebra haworthia", water="only when the soil is completely dry, about every 2 to 3 weeks",
         light="bright, indirect light or gentle morning sun", toxic=None,
         prop="from the offsets that grow around the mother plant",
         trouble=("red or brown leaves", "too much direct sun",
                  "move it to bright, indirect light"),
         repot="every 2 to 3 years, in gritty cactus mix",
         feed="a cactus fertilizer once or twice in summer",
         humidity="dry indoor air suits it"),
    dict(name="string of pearls", water="when the soil is dry, about every 2 to 3 weeks",
         light="bright, indirect light with some gentle sun",
         toxic="compounds that cause vomiting, drooling and skin irritation",
         prop="from stem cuttings laid on top of moist cactus mix",
         trouble=("shriveled pearls", "underwatering",
                  "give it a thorough drink, then let the soil dry again"),
         repot="every 2 years, in a shallow pot with cactus mix",
         feed="a diluted cactus fertilizer once a month in spring and summer",
         humidity="low to average humidity"),
    dict(name="bird of paradise", water="when the top 2 inches of soil are dry",
         light="very bright light, including some direct sun",
         toxic="compounds in its seeds and flowers that cause vomiting",
         prop="by dividing the clump, each division with several leaves",
         trouble=("split leaves", "natural wind splits, made worse by dry air",
                  "raise the humidity; splits are normal and do not harm the plant"),
         repot="every 2 to 3 years in spring; it flowers best a little root bound",
         feed="a balanced fertilizer every 2 weeks in spring and summer",
         humidity="moderate humidity"),
    dict(name="prayer plant", water="with filtered water, keeping the soil evenly moist",
         light="medium, indirect light", toxic=None,
         prop="from stem cuttings below a node, or by division",
         trouble=("curled leaves", "thirst or dry air",
                  "water when the top of the soil dries and raise the humidity"),
         repot="every 1 to 2 years in spring, in a light, moisture-holding mix",
         feed="a diluted balanced fertilizer every 2 weeks in spring and summer",
         humidity="high humidity, above 50%"),
]

# question type -> user phrasings ({p}: the plant's name)
QUESTIONS = {
    "water": ["How often should I water my {p}?", "When do I water {a}?", "What's the right watering schedule "
              "for {a}?"],
    "light": ["How much light does {a} need?", "Where should I put my {p} for the right light?",
              "Can {a} handle low light?"],
    "pets": ["Is {a} safe for cats?", "Is the {p} toxic to dogs?", "I have pets. Can I keep {a}?"],
    "prop": ["How do I propagate {a}?", "What's the best way to make new plants from my {p}?",
             "Can I grow a new {p} from a cutting?"],
    "trouble": ["My {p} has {s}. What's wrong?", "Why does my {p} have {s}?", "Help, my {p} has {s}!"],
    "repot": ["When should I repot my {p}?", "How often does {a} need repotting?",
              "Does my {p} need a bigger pot?"],
    "feed": ["Should I fertilize my {p}?", "How often do I feed {a}?", "What fertilizer does {a} need?"],
    "humidity": ["Does {a} need humidity?", "Should I mist my {p}?", "Is dry air bad for my {p}?"],
}


def a(name):
    """The name with its article: 'a pothos', 'an aloe vera'."""
    return ("an " if name[0].lower() in "aeiou" else "a ") + name


def cap(s):
    return s[0].upper() + s[1:]


def body(kind, pl, rng):
    """(answer sentence, do, avoid) for one question type."""
    p, ap = pl["name"], a(pl["name"])
    if kind == "water":
        return (f"Water your {p} {pl['water']}.", "check the soil with a finger before watering",
                "leaving the pot standing in a saucer of water")
    if kind == "light":
        return (f"{cap(ap)} grows best in {pl['light']}.", "rotate the pot now and then for even growth",
                "moving it suddenly from shade into strong sun")
    if kind == "pets":
        if pl["toxic"] is None:
            return (f"Good news: the {p} is non-toxic to cats and dogs.",
                    "still keep it out of reach so pets do not shred the leaves",
                    "assuming every plant is as safe; check each one")
        return (f"Careful: the {p} is toxic to cats and dogs. It contains {pl['toxic']}.",
                "place it somewhere pets cannot reach", "letting pets chew the leaves or fallen pieces")
    if kind == "prop":
        return (f"You can propagate {ap} {pl['prop']}.",
                rng.choice(["use clean, sharp scissors", "take cuttings in spring or summer"]),
                "putting new plants in strong direct sun")
    if kind == "trouble":
        s, cause, fix = pl["trouble"]
        return (f"{cap(s)} on {ap} usually come from {cause}.", fix,
                "fertilizing a stressed plant until it recovers")
    if kind == "repot":
        return (f"Repot {ap} {pl['repot']}.", "choose a pot with drainage holes",
                "jumping to a much bigger pot, which keeps the soil wet too long")
    if kind == "feed":
        return (f"Feed {ap} with {pl['feed']}.", "water before fertilizing so the roots do not burn",
                "fertilizing in winter, when growth slows")
    if kind == "humidity":
        return (f"{cap(ap)} likes {pl['humidity']}.",
                rng.choice(["group plants together to raise humidity", "use a pebble tray under the pot"]),
                "placing it next to a heater or air conditioner")
    raise KeyError(kind)


def example(kind, pl, rng):
    q = rng.choice(QUESTIONS[kind]).format(p=pl["name"], a=a(pl["name"]), s=pl["trouble"][0])
    answer, do, avoid = body(kind, pl, rng)
    text = f"{OPEN} {answer}\n- Do: {cap(do)}.\n- Avoid: {cap(avoid)}.\n{CLOSE}"
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": cap(q)},
                         {"role": "assistant", "content": text}]}


def main(out_dir=os.path.dirname(os.path.abspath(__file__))):
    rng = random.Random(2026)
    rows = [example(kind, pl, rng) for pl in PLANTS for kind in QUESTIONS]
    rng.shuffle(rows)
    n_valid = len(rows) // 5  # 80/20
    for name, part in (("train.jsonl", rows[n_valid:]), ("valid.jsonl", rows[:n_valid])):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{name}: {len(part)} examples")


if __name__ == "__main__":
    main()
