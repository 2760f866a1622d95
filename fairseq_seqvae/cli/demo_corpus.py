"""A small synthetic English-like corpus with latent structure, for demos and tests.

Every sentence draws hidden attributes first (topic, sentiment, tense, subject, style,
length) and then picks words from lexicons that depend on them, clause after clause.
The attributes shape the whole sentence, but the opening words (a subject or a
discourse marker) are chosen independently of topic and sentiment, so a language model
must guess them until the evidence appears, while a VAE can carry them in z from the
first word on. This is the setting where Long, Cao & Cheung (2019) show that a
last-state encoder collapses and a pooled one does not.

Deterministic: the same arguments give byte-identical files on every platform (only
``random.Random`` with an integer seed is used). Nothing is downloaded.
"""

import argparse
import os
import random
from typing import Dict, List, Sequence, Tuple

# verb entries: (base, third person singular, past)
Verb = Tuple[str, str, str]


def _verbs(spec: str) -> List[Verb]:
    """'play,plays,played watch,watches,watched' -> list of (base, 3sg, past)."""
    return [tuple(v.split(",")) for v in spec.split()]


# Each topic: nouns, verbs taking those nouns as objects, topical adjectives, places.
TOPICS: Dict[str, Dict[str, Sequence]] = {
    "sports": {
        "nouns": "match game team coach ball goal player season referee stadium race "
                 "trophy league fans striker keeper medal tournament score penalty".split(),
        "verbs": _verbs("play,plays,played watch,watches,watched win,wins,won "
                        "lose,loses,lost coach,coaches,coached train,trains,trained "
                        "kick,kicks,kicked cheer,cheers,cheered"),
        "adjs": "athletic fast defensive final local professional rival young".split(),
        "places": "the stadium|the field|the gym|the court|the track".split("|"),
    },
    "food": {
        "nouns": "soup bread cake pasta salad dinner breakfast recipe sauce pie cheese "
                 "chicken rice kitchen chef oven dessert cookie sandwich menu".split(),
        "verbs": _verbs("cook,cooks,cooked bake,bakes,baked taste,tastes,tasted "
                        "eat,eats,ate order,orders,ordered serve,serves,served "
                        "prepare,prepares,prepared share,shares,shared"),
        "adjs": "spicy sweet salty homemade fresh crispy warm vegetarian".split(),
        "places": "the kitchen|the restaurant|the bakery|the market|the cafe".split("|"),
    },
    "weather": {
        "nouns": "rain storm wind snow sky cloud sunshine forecast thunder flood frost "
                 "fog heat breeze river mountain forest lake garden meadow".split(),
        "verbs": _verbs("see,sees,saw feel,feels,felt watch,watches,watched "
                        "expect,expects,expected fear,fears,feared photograph,photographs,"
                        "photographed predict,predicts,predicted enjoy,enjoys,enjoyed"),
        "adjs": "cold windy humid cloudy stormy icy foggy tropical".split(),
        "places": "the valley|the coast|the hills|the north|the island".split("|"),
    },
    "music": {
        "nouns": "song album band concert guitar piano drummer singer melody chorus "
                 "record orchestra violin lyrics tour festival rhythm choir stage tune".split(),
        "verbs": _verbs("hear,hears,heard sing,sings,sang record,records,recorded "
                        "perform,performs,performed compose,composes,composed "
                        "rehearse,rehearses,rehearsed play,plays,played "
                        "download,downloads,downloaded"),
        "adjs": "acoustic loud classical electric catchy slow jazzy live".split(),
        "places": "the studio|the concert hall|the club|the festival|the radio".split("|"),
    },
    "technology": {
        "nouns": "computer phone laptop software app server network robot chip screen "
                 "battery update keyboard camera website database code algorithm "
                 "printer router".split(),
        "verbs": _verbs("install,installs,installed build,builds,built fix,fixes,fixed "
                        "test,tests,tested upgrade,upgrades,upgraded design,designs,designed "
                        "program,programs,programmed repair,repairs,repaired"),
        "adjs": "digital wireless smart portable automatic powerful modern technical".split(),
        "places": "the office|the lab|the data center|the workshop|the startup".split("|"),
    },
    "travel": {
        "nouns": "trip flight train hotel ticket passport suitcase beach museum map "
                 "tour guide airport journey village harbor castle road cruise luggage "
                 "souvenir".split(),
        "verbs": _verbs("visit,visits,visited book,books,booked explore,explores,explored "
                        "pack,packs,packed miss,misses,missed catch,catches,caught "
                        "reach,reaches,reached plan,plans,planned"),
        "adjs": "foreign exotic historic scenic crowded remote international overnight".split(),
        "places": "the station|the border|the old town|the airport|the harbor".split("|"),
    },
    "animals": {
        "nouns": "dog cat horse puppy kitten bird rabbit cow sheep farm barn tail "
                 "fox owl pony goat chicken duck pet vet".split(),
        "verbs": _verbs("feed,feeds,fed adopt,adopts,adopted walk,walks,walked "
                        "groom,grooms,groomed chase,chases,chased rescue,rescues,rescued "
                        "pet,pets,petted raise,raises,raised"),
        "adjs": "furry wild tiny loyal shy playful hungry sleepy".split(),
        "places": "the farm|the barn|the zoo|the park|the shelter".split("|"),
    },
    "money": {
        "nouns": "bank loan salary budget price market stock profit tax bill invoice "
                 "investor contract deal account payment bonus rent savings credit".split(),
        "verbs": _verbs("pay,pays,paid sign,signs,signed invest,invests,invested "
                        "borrow,borrows,borrowed save,saves,saved sell,sells,sold "
                        "buy,buys,bought negotiate,negotiates,negotiated"),
        "adjs": "financial annual monthly expensive cheap corporate fiscal quarterly".split(),
        "places": "the bank|the stock exchange|the head office|the meeting|the shop".split("|"),
    },
    "school": {
        "nouns": "exam teacher lesson homework student class essay library professor "
                 "lecture grade course experiment thesis lab textbook semester quiz "
                 "project diploma".split(),
        "verbs": _verbs("study,studies,studied write,writes,wrote read,reads,read "
                        "teach,teaches,taught pass,passes,passed fail,fails,failed "
                        "grade,grades,graded review,reviews,reviewed"),
        "adjs": "academic difficult scientific required advanced oral written practical".split(),
        "places": "the classroom|the library|the campus|the lecture hall|the school".split("|"),
    },
    "health": {
        "nouns": "doctor nurse hospital medicine patient fever clinic surgery vaccine "
                 "diet exercise headache injury therapy pill appointment recovery "
                 "treatment checkup ambulance".split(),
        "verbs": _verbs("treat,treats,treated visit,visits,visited take,takes,took "
                        "prescribe,prescribes,prescribed cure,cures,cured check,checks,checked "
                        "examine,examines,examined schedule,schedules,scheduled"),
        "adjs": "medical chronic painful healthy sick mental physical routine".split(),
        "places": "the hospital|the clinic|the pharmacy|the emergency room|the gym".split("|"),
    },
}

# sentiment words: adjectives for judgements, adverbs, feelings, closing remarks
SENTIMENT: Dict[str, Dict[str, Sequence[str]]] = {
    "positive": {
        "adjs": "wonderful great lovely excellent amazing brilliant pleasant perfect "
                "delightful fantastic superb charming".split(),
        "advs": "happily gladly proudly eagerly warmly calmly".split(),
        "feel": "loved|enjoyed|adored|appreciated|admired".split("|"),
        "feel_now": "love|enjoy|adore|appreciate|admire".split("|"),
        "nouns": "joy success pleasure delight blessing treat".split(),
        "close": "what a great day|i would do it again|everyone was smiling|"
                 "it made us so happy|we could not ask for more".split("|"),
    },
    "negative": {
        "adjs": "terrible awful horrible boring disappointing dreadful annoying poor "
                "miserable useless nasty dull".split(),
        "advs": "sadly angrily reluctantly nervously bitterly wearily".split(),
        "feel": "hated|disliked|regretted|resented|dreaded".split("|"),
        "feel_now": "hate|dislike|regret|resent|dread".split("|"),
        "nouns": "failure disaster mess nightmare waste headache".split(),
        "close": "what a waste of time|i will never do it again|nobody was smiling|"
                 "it made us so angry|it could not be worse".split("|"),
    },
}

# subjects: (words, person) where person 3 takes the 3sg present form
SUBJECTS: List[Tuple[str, int]] = [
    ("i", 1), ("we", 1), ("you", 1), ("they", 1), ("he", 3), ("she", 3),
    ("my sister", 3), ("my brother", 3), ("our neighbor", 3), ("the old man", 3),
    ("my friends", 1), ("the kids", 1), ("our family", 3), ("my boss", 3),
]
OBJECT_FORM = {"i": "me", "we": "us", "they": "them", "he": "him", "she": "her"}
# every sentence has one protagonist, named again and again
NAMES = ("anna ben carla david emma felix grace henry iris jack kate leo maria nick olga "
         "paul rosa sam tina victor wendy yuri zoe adam bella chris diana eric fiona "
         "george hannah ivan julia kevin laura mike nora oscar peter ruth").split()
MAX_WORDS = 30

TIME = {
    "past": "yesterday|last week|last year|two days ago|back then|last summer".split("|"),
    "present": "today|right now|these days|every morning|this week|as usual".split("|"),
    "future": "tomorrow|next week|next year|soon|in a few days|next summer".split("|"),
}

# openers depend on style and sentiment: the first words already carry two attributes
STYLE = {
    "casual": {"intens": "so|really|super|pretty|totally".split("|"),
               "open": {"positive": "wow|yay|oh nice|awesome|cool".split("|"),
                        "negative": "ugh|oh no|meh|yikes|sigh".split("|")},
               "end": ["!", "."]},
    "formal": {"intens": "very|quite|rather|extremely|remarkably".split("|"),
               "open": {"positive": "fortunately|thankfully|luckily|pleasingly".split("|"),
                        "negative": "unfortunately|regrettably|alas|disappointingly"
                                    .split("|")},
               "end": ["."]},
}

CONJ = "and|but|because|so|while|although|after|before".split("|")
DETS = "the|a|this|that|our|my|their|every".split("|")
SMALL = "with a friend|with the family|for the first time|on the weekend|" \
        "in the evening|all day|once more|after work".split("|")


class _Sentence:
    """Draws the latent attributes of one sentence and then its words."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.topic = TOPICS[rng.choice(sorted(TOPICS))]
        self.sentiment = rng.choice(sorted(SENTIMENT))
        self.sent = SENTIMENT[self.sentiment]
        self.tense = rng.choice(sorted(TIME))
        self.style = STYLE[rng.choice(sorted(STYLE))]
        # a protagonist, two "favourite" nouns, a place and two judgements per
        # sentence recur in clause after clause: information a VAE can carry in z
        # from the first word on, while a language model has to copy it
        self.name = rng.choice(NAMES)
        self.focus = rng.sample(list(self.topic["nouns"]), 2)
        self.place = rng.choice(list(self.topic["places"]))
        self.moods = rng.sample(list(self.sent["adjs"]), 2)
        # number of clauses sets the length (about 5 to 30 words)
        self.n_clauses = rng.choice([1, 1, 2, 2, 2, 3, 3, 4])

    def pick(self, seq):
        return self.rng.choice(list(seq))

    def noun(self) -> str:
        if self.rng.random() < 0.75:
            return self.pick(self.focus)
        return self.pick(self.topic["nouns"])

    def mood(self) -> str:
        if self.rng.random() < 0.75:
            return self.pick(self.moods)
        return self.pick(self.sent["adjs"])

    def where(self) -> List[str]:
        if self.rng.random() < 0.75:
            return self.place.split()
        return self.pick(self.topic["places"]).split()

    def np(self) -> List[str]:
        """A noun phrase: determiner, optional adjective(s), topical noun."""
        words = [self.pick(DETS)]
        r = self.rng.random()
        if r < 0.35:
            words.append(self.pick(self.topic["adjs"]))
        elif r < 0.6:
            words.append(self.mood())
        words.append(self.noun())
        if words[0] == "a" and words[1][0] in "aeiou":
            words[0] = "an"
        return words

    def verb(self, person: int) -> List[str]:
        base, third, past = self.pick(self.topic["verbs"])
        if self.tense == "past":
            return [past]
        if self.tense == "future":
            return ["will", base]
        return [third if person == 3 else base]

    def be(self, person: int) -> List[str]:
        if self.tense == "past":
            return ["was"]
        if self.tense == "future":
            return ["will", "be"]
        return ["is"] if person == 3 else ["are"]

    def feel(self) -> str:
        if self.tense == "past":
            return self.pick(self.sent["feel"])
        return self.pick(self.sent["feel_now"])

    def subject(self) -> Tuple[List[str], int]:
        if self.rng.random() < 0.5:
            return [self.name], 3
        words, person = self.pick(SUBJECTS)
        return words.split(), person

    def clause(self, first: bool) -> List[str]:
        subj, person = self.subject()
        kind = self.rng.randrange(7)
        if kind == 0:
            out = subj + self.verb(person) + self.np()
            if self.rng.random() < 0.5:
                out += ["at", *self.where()]
        elif kind == 1:
            out = self.np() + self.be(3) + [self.pick(self.style["intens"]), self.mood()]
        elif kind == 2:
            feel = self.feel()
            if self.tense == "future":
                feel = "will " + self.pick(self.sent["feel_now"])
            elif self.tense == "present" and person == 3:
                feel += "s"  # every feeling verb here is regular
            out = subj + feel.split() + self.np()
        elif kind == 3:
            out = subj + self.verb(person) + self.np() + self.pick(SMALL).split()
        elif kind == 4:
            out = ["it"] + self.be(3) + ["a", self.pick(self.sent["nouns"])]
            if self.rng.random() < 0.5:
                out += ["for", *(OBJECT_FORM.get(w, w) for w in subj)]
        elif kind == 5:
            out = (subj + self.verb(person) + self.np()
                   + [self.pick(self.sent["advs"])])
        else:
            out = ["at", *self.where()] + subj + self.verb(person) + self.np()
        if first and self.rng.random() < 0.6:
            out = self.pick(TIME[self.tense]).split() + [","] + out
        return out

    def words(self) -> List[str]:
        out: List[str] = []
        if self.rng.random() < 0.6:
            out += self.pick(self.style["open"][self.sentiment]).split() + [","]
        for i in range(self.n_clauses):
            clause = self.clause(first=i == 0)
            if i > 0:
                # a clause that would overflow MAX_WORDS ends the sentence instead
                if len(out) + 1 + len(clause) + 1 > MAX_WORDS:
                    break
                out.append(self.pick(CONJ))
            out += clause
        close = [";"] + self.pick(self.sent["close"]).split()
        if self.rng.random() < 0.3 and len(out) + len(close) + 1 <= MAX_WORDS:
            out += close
        out.append(self.pick(self.style["end"]))
        return out


def generate_sentences(n: int, seed: int = 0) -> List[str]:
    """``n`` sentences (lower case, space-tokenized), deterministic in ``seed``."""
    rng = random.Random(seed)
    return [" ".join(_Sentence(rng).words()) for _ in range(n)]


def write_demo_corpus(out_dir: str, n_train: int = 20000, n_valid: int = 1000,
                      n_test: int = 1000, seed: int = 0) -> Dict[str, str]:
    """Writes ``train.txt``, ``valid.txt`` and ``test.txt`` (one sentence per line)
    into ``out_dir`` (created if needed).

    The splits come from one stream of ``n_train + n_valid + n_test`` sentences, so
    they are disjoint draws of the same distribution and change only with ``seed``.

    Returns:
        {"train": path, "valid": path, "test": path}
    """
    for name, n in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if n < 1:
            raise ValueError(f"{name} must be at least 1, got {n}")
    sentences = generate_sentences(n_train + n_valid + n_test, seed)
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    start = 0
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        paths[split] = os.path.join(out_dir, f"{split}.txt")
        with open(paths[split], "w", encoding="utf-8", newline="\n") as f:
            f.writelines(s + "\n" for s in sentences[start:start + n])
        start += n
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="folder for train.txt, valid.txt, test.txt")
    parser.add_argument("--n-train", type=int, default=20000, help="sentences (default 20000)")
    parser.add_argument("--n-valid", type=int, default=1000, help="sentences (default 1000)")
    parser.add_argument("--n-test", type=int, default=1000, help="sentences (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    paths = write_demo_corpus(args.out_dir, args.n_train, args.n_valid, args.n_test, args.seed)
    for split, path in paths.items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
