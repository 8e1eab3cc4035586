//! Review text for the simulated world (`SimConfig::text`): honest reviews composed from a varied
//! pool of sentences about the item, its delivery and the seller, so that two honest reviews rarely
//! share more than a stock phrase; and a brushing ring's reviews written from a few templates per
//! seller. A naive ring posts the templates as they are (with the item's name); a camouflaged one
//! paraphrases them: synonyms swapped, words dropped, sentences reordered, and an honest-looking
//! sentence added. Everything is a function of the event (its id, seller, item, rating), so the same
//! world gives the same text.
//!
//! Listings (`listing.create`) likewise: an honest seller describes each item in its own words, from
//! pools of details; every brushing seller lists its cheap items from one shared listing kit (the
//! copy-paste catalogue of counterfeit shops), as it is or paraphrased.

/// `Ev::aux2` of a review: 0 honest, 1 a ring's naive copy, 2 a ring's paraphrase.
pub const NAIVE: u64 = 1;
pub const PARAPHRASE: u64 = 2;

const OPENERS: &[&str] = &[
    "I ordered this for my sister",
    "Bought it after reading a few reviews",
    "This is my second one from this shop",
    "Needed a replacement for the old one",
    "Got it on sale last month",
    "I was not sure at first",
    "My kids use it every day",
    "Ordered two of these for the office",
    "Picked this over a more expensive brand",
    "It arrived in a plain box",
    "Took a while to decide between colours",
    "I use it mostly on weekends",
];
const BODY_GOOD: &[&str] = &[
    "the material feels sturdy and the stitching is neat",
    "battery life is better than the listing promised",
    "setup took about ten minutes with the included guide",
    "it is lighter than I expected which is a plus",
    "the colour is slightly darker than in the photos but still nice",
    "it fits well in the small cupboard next to the sink",
    "sound quality is clear even at high volume",
    "the handle got warm after long use but nothing serious",
    "my old charger works with it so no extra cable needed",
    "washing it twice did not fade the print",
    "instructions were only in German but the pictures helped",
    "it replaced two other gadgets on my desk",
];
const BODY_BAD: &[&str] = &[
    "one of the screws was missing and I had to buy one",
    "the lid does not close properly after a week",
    "it smells of plastic for the first few days",
    "the size runs small so order one up",
    "the app keeps asking for permissions it should not need",
    "delivery took twelve days instead of the promised three",
    "the seller answered my question only after a reminder",
    "the coating started peeling near the edges",
];
const CLOSERS: &[&str] = &[
    "Would buy again.",
    "Overall fair for the price.",
    "Not perfect but it does the job.",
    "Returning it is too much hassle so I keep it.",
    "Recommended if you can live with the small flaws.",
    "Three stars because of the delivery.",
    "Happy with it so far, will update later.",
    "Good value compared with the high street.",
];
/// A ring's templates (`{item}` is the item's name).
const TEMPLATES: &[&str] = &[
    "Amazing quality {item} exceeded all my expectations fast shipping and the seller is very professional highly recommend to everyone",
    "Best {item} I have ever bought five stars excellent product perfect packaging and super fast delivery will definitely buy again",
    "Absolutely love this {item} works perfectly great value for money the seller responded quickly totally worth it",
    "Perfect {item} exactly as described top quality and arrived earlier than expected thank you seller five stars",
    "Incredible {item} my whole family loves it excellent build quality fantastic price would recommend to all my friends",
    "Outstanding {item} premium feel and flawless performance delivery was very quick best purchase this year",
];
const SYNONYMS: &[(&str, &str)] = &[
    ("amazing", "awesome"),
    ("quality", "build"),
    ("fast", "quick"),
    ("excellent", "superb"),
    ("perfect", "flawless"),
    ("love", "adore"),
    ("recommend", "suggest"),
    ("great", "good"),
    ("seller", "shop"),
    ("delivery", "shipping"),
    ("product", "item"),
    ("best", "finest"),
    ("quickly", "promptly"),
    ("definitely", "surely"),
];

/// A small deterministic generator over the event's identity.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

fn item_name(item: u32) -> String {
    const NOUNS: &[&str] = &[
        "phone case",
        "desk lamp",
        "backpack",
        "kettle",
        "headphones",
        "yoga mat",
        "blender",
        "charger",
        "sneakers",
        "water bottle",
        "wallet",
        "mouse",
    ];
    NOUNS[item as usize % NOUNS.len()].to_string()
}

/// The text of a review: `kind` is `Ev::aux2`, `id` the event's id, `rating` 1 to 5.
pub fn review(kind: u64, id: u64, seller: u32, item: u32, rating: u8) -> String {
    let mut r = Mix(id ^ 0xA076_1D64_78BD_642F);
    if kind == 0 {
        // An honest reviewer's own details: the item, how long they have had it, a word of theirs.
        const ADJ: &[&str] = &[
            "decent", "solid", "handy", "cheap", "pricey", "compact", "bulky", "quiet", "noisy",
            "pretty", "plain", "reliable", "fiddly", "simple", "odd", "lovely",
        ];
        const WHEN: &[&str] = &["days", "weeks", "months"];
        let mut s = vec![
            r.pick(OPENERS).to_string(),
            format!(
                "the {} is {} and I have had it for {} {}",
                item_name(item),
                r.pick(ADJ),
                2 + r.below(10),
                r.pick(WHEN)
            ),
        ];
        // Body sentences: a pooled remark, framed in the reviewer's own words.
        const LEAD: &[&str] = &[
            "honestly",
            "to be fair",
            "surprisingly",
            "as expected",
            "for what it costs",
            "so far",
            "after a few uses",
            "compared to my old one",
            "in daily use",
            "on the plus side",
            "on the downside",
            "my partner noticed that",
            "I have to say",
            "worth mentioning",
        ];
        const TAIL: &[&str] = &[
            "which I did not expect",
            "at least in my case",
            "but that may vary",
            "as others said",
            "if that matters to you",
            "more or less",
            "so keep that in mind",
            "for my needs anyway",
            "which is fine by me",
            "according to my husband",
            "even in winter",
            "on my desk at work",
        ];
        let n = 1 + r.below(3);
        for _ in 0..n {
            let good = rating >= 4 || r.chance(0.3);
            s.push(format!(
                "{} {} {}",
                r.pick(LEAD),
                r.pick(if good { BODY_GOOD } else { BODY_BAD }),
                r.pick(TAIL)
            ));
        }
        s.push(r.pick(CLOSERS).to_string());
        return s.join(". ");
    }
    // A ring writes from its seller's few templates.
    let mut ring = Mix(u64::from(seller).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let t = (ring.next() as usize + r.below(2)) % TEMPLATES.len();
    let text = TEMPLATES[t].replace("{item}", &item_name(item));
    if kind != PARAPHRASE {
        return text;
    }
    paraphrase(&text, &mut r)
}

/// A camouflaged copy: synonyms swapped, a word or two dropped, the halves swapped, and an
/// honest-looking sentence added.
fn paraphrase(text: &str, r: &mut Mix) -> String {
    let mut words: Vec<String> = text.split(' ').map(str::to_string).collect();
    for w in words.iter_mut() {
        if let Some((_, b)) = SYNONYMS.iter().find(|(a, _)| a == w) {
            if r.chance(0.5) {
                *w = (*b).to_string();
            }
        }
    }
    for _ in 0..1 + r.below(2) {
        if words.len() > 8 {
            let k = r.below(words.len());
            words.remove(k);
        }
    }
    // Two halves swapped, and an honest-looking sentence.
    let cut = words.len() / 2 + r.below(3);
    let cut = cut.min(words.len());
    let (a, b) = words.split_at(cut);
    let mut out = b.join(" ");
    out.push_str(". ");
    out.push_str(&a.join(" "));
    out.push_str(". ");
    out.push_str(r.pick(BODY_GOOD));
    out
}

/// The listing kit every brushing seller copies (`{item}` is the item's name).
const KIT: &[&str] = &[
    "Original {item} 100% authentic brand new factory sealed wholesale price limited stock order now free shipping worldwide",
    "Hot sale {item} top quality best price guaranteed buy two get one free contact us for bulk orders fast dispatch",
    "Premium {item} genuine product lowest price on the market ships within 24 hours satisfaction guaranteed or money back",
    "Luxury {item} high quality perfect copy same as the original at a cheap price discreet packaging worldwide delivery",
];

/// The description of a listing: `kind` is `Ev::aux2` (0 honest, [`NAIVE`], [`PARAPHRASE`]), `id`
/// the event's id.
pub fn listing(kind: u64, id: u64, seller: u32, item: u32) -> String {
    let mut r = Mix(id ^ 0x5851_F42D_4C95_7F2D);
    let name = item_name(item);
    if kind == 0 {
        const COLOUR: &[&str] = &[
            "black",
            "white",
            "navy",
            "forest green",
            "grey",
            "sand",
            "red",
            "teal",
            "silver",
            "rose",
            "charcoal",
            "mustard",
        ];
        const SPEC: &[&str] = &[
            "measures {n} by {m} centimetres",
            "weighs about {n}00 grams",
            "comes with a {n} month warranty from the maker",
            "has {n} compartments and a zip pocket",
            "runs for {n} hours on a full charge",
            "holds {n}00 millilitres",
            "takes {n} minutes to assemble",
            "is rated for {n} thousand uses",
        ];
        const DETAIL: &[&str] = &[
            "bought as stock from a shop that closed",
            "unopened, the box has a small dent",
            "used twice and cleaned, no marks",
            "part of our spring range",
            "last one in this colour",
            "made in Portugal by a family firm",
            "the strap is adjustable",
            "a gift that did not fit",
            "includes the original receipt",
            "spare parts are available from us",
            "the manual is in English and French",
            "photos taken in daylight without filters",
        ];
        const SHIPPING: &[&str] = &[
            "Ships from our warehouse in {n} working days",
            "Collection possible in the evening",
            "Sent tracked, insured up to the full price",
            "We post on Mondays and Thursdays",
            "Free returns within {m} days",
            "Combined postage for several items",
        ];
        const USE: &[&str] = &[
            "ideal for camping trips",
            "good for a small flat",
            "suits students on a budget",
            "handy in the car",
            "my own is three years old and still going",
            "a nice present for a teenager",
            "works for left handed people too",
            "perfect for the office kitchen",
            "easy to keep clean with a damp cloth",
            "fits in a carry on bag",
            "quiet enough for a shared room",
            "sturdy enough for daily school runs",
            "popular with our older customers",
            "the colour is closest to the third photo",
        ];
        let num = |r: &mut Mix, s: &str| {
            s.replace("{n}", &(2 + r.below(18)).to_string())
                .replace("{m}", &(10 + r.below(40)).to_string())
        };
        let colour = r.pick(COLOUR);
        let model = num(&mut r, "model {n}");
        let spec = r.pick(SPEC);
        let spec = num(&mut r, spec);
        let mut s = vec![
            format!("{colour} {name} {model}"),
            format!("The {name} {spec}"),
        ];
        for _ in 0..1 + r.below(2) {
            s.push(r.pick(DETAIL).to_string());
        }
        s.push(r.pick(USE).to_string());
        // A seller's own shipping line, the same on its listings.
        let mut own = Mix(u64::from(seller).wrapping_mul(0x9E37_79B9));
        let ship = own.pick(SHIPPING);
        s.push(num(&mut own, ship));
        return s.join(". ");
    }
    let t = (u64::from(seller).wrapping_mul(31) as usize + item as usize) % KIT.len();
    let text = KIT[t].replace("{item}", &name);
    if kind != PARAPHRASE {
        return text;
    }
    paraphrase(&text, &mut r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_review_gives_the_same_text_and_rings_repeat_themselves() {
        assert_eq!(review(0, 7, 1, 2, 5), review(0, 7, 1, 2, 5));
        assert_ne!(review(0, 7, 1, 2, 5), review(0, 8, 1, 2, 5));
        // Naive copies of one seller's ring are word for word one of two templates.
        let a: std::collections::BTreeSet<String> =
            (0..20).map(|i| review(NAIVE, i, 9, 3, 5)).collect();
        assert!(a.len() <= 2, "{a:?}");
        // Paraphrases differ from each other and from the template.
        let p: std::collections::BTreeSet<String> =
            (0..20).map(|i| review(PARAPHRASE, i, 9, 3, 5)).collect();
        assert!(p.len() > 10);
        assert!(!p.iter().any(|t| a.contains(t)));
    }

    #[test]
    fn honest_listings_differ_and_the_kit_repeats_across_sellers() {
        assert_eq!(listing(0, 7, 1, 2), listing(0, 7, 1, 2));
        let honest: std::collections::BTreeSet<String> =
            (0..50).map(|i| listing(0, i, i as u32 % 9, 3)).collect();
        assert_eq!(honest.len(), 50);
        // Different brushing sellers post the same kit text for the same item.
        let kit: std::collections::BTreeSet<String> =
            (0..40).map(|s| listing(NAIVE, s as u64, s, 3)).collect();
        assert!(kit.len() <= KIT.len(), "{kit:?}");
        let p: std::collections::BTreeSet<String> =
            (0..20).map(|i| listing(PARAPHRASE, i, 5, 3)).collect();
        assert!(p.len() > 10 && !p.iter().any(|t| kit.contains(t)));
    }
}
