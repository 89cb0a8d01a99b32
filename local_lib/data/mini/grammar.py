"""Vocabulary and sentence templates for the mini corpora.

Written for this project (no external text), small enough that a few hundred training
sentences cover it, and typed (people act on things that suit the verb) so the sentences read
naturally. Templates name slots in braces; `sentences.py` fills them.
"""

from __future__ import annotations

# Slot name -> choices. A choice may itself contain {slots}; expansion is recursive.
SLOTS: dict[str, tuple[str, ...]] = {
    "name": (
        "Anna", "Peter", "Maria", "James", "Lucy", "Thomas", "Emma", "David",
        "Sarah", "Daniel", "Grace", "Henry", "Clara", "Oliver", "Nora", "Samuel",
    ),
    "person": (
        "farmer", "teacher", "doctor", "baker", "sailor", "painter", "driver", "neighbour",
        "student", "nurse", "old man", "young woman", "little girl", "little boy", "fisherman",
        "gardener",
    ),
    "animal": ("dog", "cat", "horse", "bird", "goat", "puppy", "kitten", "duck"),
    "subject": ("the {person}", "{name}", "my {relative}", "our {person}", "the {person}"),
    "relative": ("sister", "brother", "mother", "father", "uncle", "aunt", "cousin", "friend"),
    # Things you can pick up, and the verbs that suit them.
    "small_thing": (
        "letter", "book", "basket", "cup", "key", "hat", "coat", "bag", "ticket", "map",
        "box", "lamp", "blanket", "umbrella", "bottle", "candle", "scarf", "jar",
    ),
    "small_verb_past": (
        "found", "carried", "dropped", "bought", "lost", "brought", "kept", "hid", "borrowed",
        "forgot", "picked up", "wrapped", "packed", "sold",
    ),
    "small_verb_base": (
        "find", "carry", "bring", "buy", "keep", "borrow", "pack", "wrap", "hide", "sell",
    ),
    # Things too big to carry, and the verbs that suit them.
    "big_thing": (
        "boat", "house", "car", "fence", "wall", "table", "door", "window", "roof", "bicycle",
        "wagon", "shed", "gate", "bench", "cart", "cabin",
    ),
    "big_verb_past": (
        "painted", "cleaned", "fixed", "repaired", "sold", "bought", "washed", "checked",
        "built", "locked", "opened", "closed", "measured",
    ),
    "big_verb_base": (
        "paint", "clean", "fix", "repair", "sell", "wash", "check", "build", "lock", "open",
        "close", "measure",
    ),
    "size": ("small", "big", "old", "new", "heavy", "tiny", "large", "little"),
    "colour": ("red", "blue", "green", "yellow", "white", "black", "brown", "grey"),
    "material": ("wooden", "metal", "paper", "leather", "glass", "woollen"),
    "looks": ("{size}", "{colour}", "{size} {colour}", "{size} {material}", "{colour}"),
    "small_np": ("the {small_thing}", "a {looks} {small_thing}", "the {looks} {small_thing}"),
    "big_np": ("the {big_thing}", "a {looks} {big_thing}", "the {looks} {big_thing}"),
    "place": (
        "near the river", "in the kitchen", "behind the school", "at the market",
        "on the hill", "by the station", "in the garden", "under the bridge",
        "across the street", "inside the barn", "at the harbour", "next to the church",
        "in the village", "by the lake", "on the farm", "in the park",
    ),
    "time": (
        "this morning", "last night", "yesterday", "on Sunday", "after lunch",
        "before dinner", "every evening", "last week", "early today", "on Monday",
        "in the afternoon", "at midnight", "after the rain", "before sunrise",
    ),
    "moved_past": (
        "walked", "waited", "slept", "sang", "laughed", "stayed", "played", "rested",
        "worked", "danced", "sat", "listened",
    ),
    "moved_base": ("walk", "wait", "sleep", "sing", "stay", "play", "rest", "work", "sit"),
    "feeling": (
        "tired", "happy", "hungry", "worried", "excited", "quiet", "busy", "cold", "late",
        "proud", "calm", "sleepy",
    ),
    "weather": (
        "rain", "snow", "wind", "storm", "fog", "sunshine", "frost", "heat",
    ),
    "small_state": ("heavy", "wet", "empty", "full", "warm", "broken", "dusty", "missing"),
    "big_state": ("clean", "locked", "open", "broken", "painted", "dusty", "new", "finished"),
    "reason": (
        "because of the {weather}", "after the long walk", "before the big market",
        "since the {weather} came", "after a busy day",
    ),
}

# Whole-sentence patterns; the first letter is capitalised after expansion.
TEMPLATES: tuple[str, ...] = (
    "{subject} {small_verb_past} {small_np} {place}.",
    "{subject} {small_verb_past} {small_np} {time}.",
    "{subject} {big_verb_past} {big_np} {time}.",
    "{subject} {big_verb_past} {big_np} {place}.",
    "{subject} {moved_past} {place} {time}.",
    "the {animal} {moved_past} {place}.",
    "the {animal} slept {place} {time}.",
    "{subject} will {small_verb_base} {small_np} {time}.",
    "{subject} will {big_verb_base} {big_np} {time}.",
    "did {subject} {big_verb_base} {big_np} {time}?",
    "did {subject} {small_verb_base} {small_np} {place}?",
    "where did {subject} {small_verb_base} {small_np}?",
    "why did {subject} {moved_base} {place}?",
    "please {big_verb_base} {big_np} {time}.",
    "please {small_verb_base} {small_np} {place}.",
    "we should {big_verb_base} {big_np} before the {weather}.",
    "{subject} was {feeling} {reason}.",
    "{subject} felt {feeling} {time}.",
    "the {small_thing} was {small_state} {time}.",
    "the {big_thing} {place} was {big_state}.",
    "{name} said the {big_thing} was {big_state}.",
    "{name} told me the {small_thing} was {small_state}.",
    "there is a {looks} {small_thing} {place}.",
    "I think {subject} {moved_past} {place}.",
    "I saw the {animal} {place} {time}.",
    "the {weather} stopped {time}.",
    "we heard the {weather} {time}.",
    "can you {small_verb_base} {small_np} for {name}?",
    "{subject} and {name} {moved_past} {place}.",
    "{subject} never {moved_past} {place}.",
)
