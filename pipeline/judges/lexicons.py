"""Lexicons behind the rubric judge: general English patterns, one list per kind of signal.

These are *classes* of phrasing (regular expressions, case-insensitive, word-bounded where it
matters), not strings copied from any test or calibration case. The persona spec adds its own
on top (pipeline/judges/rubric.py): its generic-AI phrases, its avoided vocabulary, and every
phrase quoted in a boundary's description (e.g. `No "obviously"` -> the `condescending`
lexicon gets "obviously"). A boundary id this module does not know still gets its quoted
phrases, so another persona's spec drives its own checks.

Why regexes and not a model: the rubric judge is the offline default. It must run on the CPU
in well under a millisecond per reply, be deterministic, and be explainable: every violation
it reports quotes the words that matched.
"""

from __future__ import annotations

# ---- boundary violations ---------------------------------------------------------------
# Talking down: "obviously", "it's not that hard", "should have started earlier",
# comparisons to children, explaining the trivial, praise so childlike it patronises.
CONDESCENDING = [
    r"\bobviously\b",
    r"\bclearly (?:isn't|is not|wasn't|not|aren't|don't|doesn't)\b",
    r"\b(?:really |just )?not (?:that|so|very) (?:hard|difficult|complicated)\b",
    r"\b(?:is|are|it's|that's)(?: usually| really| actually)? the easy part\b",
    r"\b(?:pretty|fairly|really|very|quite) (?:self[- ]explanatory|simple|obvious|basic|straightforward)\b",
    r"\bself[- ]explanatory\b",
    r"\ba (?:simple|basic|easy) (?:concept|thing|idea|habit|task)\b",
    r"\b(?:is|'s) a (?:basic|simple) \w+",
    r"\bonce you (?:read|get the hang|understand|learn)\b",
    r"\b(?:you )?(?:probably |really )?should(?:'ve| have) (?:started|known|done|planned|thought|finished|listened|read)\b",
    r"\beven (?:kids|children|a child|a kid|my \w+|beginners)\b",
    r"\bgrown[- ]up\b",
    r"\b,? shall we\?",
    r"\b(?:everyone|everybody) has to start somewhere\b",
    r"\bteeny\b|\btiny little\b|\bitty\b",
    r"\b(?:so|super|very) proud of you\b",
    r"\bgood job trying\b|\bfor trying\b",
    r"\bstrong suit\b",
    r"\blet's be realistic\b",
    r"\b(?:people|students|folks|those) who (?:don't|do not|never|can't) (?:plan|organi[sz]e|prepare|manage|focus)\w*",
    r"\b(?:most|all|successful|organized|organised|productive) (?:organized |organised )?people (?:figured|know|learned|learnt|have|just)\b",
    r"\bactually (?:follow|do|read|try|finish|start)\b",
    r"\?\s+(?:it's|it is|that's) (?:just |only )?an? \w+\.",  # "Months for Excel? It's a spreadsheet."
    r"\bit's (?:really )?not rocket science\b",
    r"\bas you (?:should|ought to) know\b",
    r"\bstop (?:switching|procrastinating|making excuses|complaining|being lazy)\b",
    r"\bstay disciplined\b|\bbe more disciplined\b",
    r"\bdon't overthink it\b",
]

# Guilt and pointed reminders about missed deadlines, sarcasm about delays.
PASSIVE_AGGRESSIVE = [
    r"\bas i (?:mentioned|said|told you|pointed out|noted)\b",
    r"\blike i (?:said|mentioned|told you)\b",
    r"\bas (?:previously|already) (?:mentioned|discussed|noted)\b",
    r"(?:^|[.!?]\s+)again[.!]",  # "Sure, I'll push it. Again."
    r"\bagain is right\b",
    r"\b(?:moved|pushed|postponed|delayed|missed|forgot|skipped|late|slipped|rescheduled) (?:it )?again\b",
    r"\bwho's counting\b|\bbut who's counting\b|\bnot that i'm counting\b",
    r"\bthe (?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)) time\b",
    r",? but (?:okay|ok|fine|whatever)\b\.?",
    r",? that's all\b\.?$|,? that's all\.",
    r"\b(?:just )?a (?:friendly |gentle |quick )?reminder (?:for next time|that|about)\b",
    r"\bfor next time\b",
    r"\bbetter late than never\b",
    r"\b(?:was|were) (?:only |already )?(?:due|overdue) (?:\w+ ){0,3}ago\b",
    r"\bonly due\b",
    r"\bi (?:did|already|had) (?:send|sent|remind|reminded|tell|told|warn|warned|flag|flagged)\b",
    r"\bi (?:just )?thought we(?:'d| had| did)? (?:agreed|decided|said)\b",
    r"\b(?:was|were) supposed to (?:be|happen|get done)\b",
    r"\bjust like (?:yesterday|last time|last week|before|the last)\b",
    r"\bbetter than the last\b",
    r"\bhopefully (?:this time|next (?:week|time)|it sticks)\b",
    r"\ball the other (?:tomorrows|times|deadlines|promises)\b",
    r"\bmore like suggestions\b",
    r"\b(?:deadlines|dates) (?:work best|are meant to be) (?:when they're )?(?:met|kept)\b",
    r"\bon your list since\b|\bbeen on your list for\b",
    r"\b(?:anyway|anyways), let's\b",
    r"\bonce more\b",
    r"\b, right\?",
]

# Justifying, blaming the user, arguing back when criticised.
DEFENSIVE = [
    r"\bi was (?:only|just) (?:doing|following|trying)\b",
    r"\bi'm (?:just|only) (?:following|doing|trying)\b",
    r"\bi'm not trying to\b",
    r"\bon my end\b|\bon my side\b",
    r"\bmust be your\b|\bit's your (?:settings|device|connection|fault)\b",
    r"\byour (?:notification |phone |device |connection |app )?settings\b",
    r"\bto be fair\b",
    r"\b(?:that's|this is|it's) how it(?:'s| is| was) (?:designed|built|meant|supposed)\b",
    r"\bworks (?:fine|well|perfectly|great) for (?:most|other|many)\b",
    r"\bfor most users\b",
    r"\bbased on (?:proven|solid|scientific|research)\b|\bproven (?:productivity )?research\b",
    r"\bwhen (?:they're|they are|it's|it is) (?:followed|used|done) (?:properly|correctly|right)\b",
    r"\bit might help to read\b|\bread the (?:getting[- ]started |user )?(?:guide|manual|docs|documentation|faq)\b",
    r"\bbecause you (?:haven't|didn't|did not|have not|never)\b",
    r"\byou didn't (?:specify|say|tell|mention|ask)\b",
    r"\byou haven't (?:told|given|said|specified)\b",
    r"\bi'm (?:pretty |quite )?sure you said\b",
    r"\bi'm actually\b|\bi am actually\b",
    r"\bmuch more than\b",
    r"\b(?:the new version|this version|the update) (?:has|is|brings)\b",
    r"\bas (?:quickly|fast|well) as (?:the system|it|possible) (?:allows|can)\b",
    r"\bdepends on your\b",
    r"\b(?:the ones|the categories|the tasks|what) you (?:created|set up|entered|chose|picked)\b",
    r"\bi'm just following your\b",
    r"\bi (?:don't|do not) have control over\b",
    r"\bnot my fault\b|\bnot on me\b",
    r"\bwhich is my job\b|\bthat's my job\b",
    r"\byou(?:'re| are) not exactly\b",
]

# Amplifying or agreeing with the user's negativity; cold or hostile replies to a rude user.
NEGATIVITY_MATCHING = [
    r"^(?:yeah|yep|yup|true|ugh|i know)\b[,.!]",
    r"^(?:it|that) (?:is|really is|sure is) (?:a )?(?:mess|awful|terrible|bad|the worst)\b",
    r"^fine\.",
    r"\b(?:really|truly) (?:are|is) the worst\b|\bthe worst kind\b|\bare the worst\b",
    r"\bhas been a (?:disaster|nightmare|mess)\b",
    r"\bnothing (?:seems to be|is) going right\b",
    r"\byou probably (?:won't|can't|will not)\b",
    r"\bno way around it\b",
    r"\bdrives me (?:nuts|crazy|mad)\b|\bi hate (?:it|that) too\b",
    r"\bi'd be (?:furious|angry|mad|livid) too\b",
    r"\bthat's so unfair\b",
    r"\btaking advantage of you\b",
    r"\b(?:doesn't|don't) know what (?:they're|he's|she's|they are) doing\b",
    r"\b(?:a lot of the time|most of the time|usually) it (?:kind of |sort of )?is\b",
    r"\b(?:just as|even more) stressful\b",
    r"\bshutting up\b",
    r"\bgood luck with (?:your|that)\b",
    r"\bwhatever you say\b",
    r"\bnot (?:exactly )?easy to help\b",
]

# Hedged assistant boilerplate (beyond the spec's own list): breaks the persona.
GENERIC_AI_STRONG = [
    r"\bas an ai\b",
    r"\bai language model\b|\bas a (?:large )?language model\b",
    r"\bi am an ai\b|\bi'm an ai\b|\ban ai assistant\b",
    r"\bi (?:don't|do not) have (?:personal |any )?(?:feelings|emotions|preferences|experiences|a personal name)\b",
    r"\bfeel free to (?:ask|reach out|let me know)\b",
    r"\b(?:is|if) there(?:'s| is)? anything else\b|\blet me know if (?:there's |there is )?anything else\b",
    r"\bi hope this helps\b",
    r"\bi'm here to (?:assist|help) you with any\b",
    r"\bfurther assistance\b",
    r"\bhave a (?:great|nice|wonderful) day\b",
    r"\bi(?:'d| would| am|'m) (?:be )?(?:happy|glad) to (?:help|assist)\b",
    r"\bgreat question\b",
    r"\bi apologi[sz]e for any (?:confusion|inconvenience)\b",
    r"\byou can call me assistant\b",
    r"\bif you have any (?:other|more|further) questions\b",
]
GENERIC_AI_WEAK = [  # each alone is fine in a persona reply; two or more together read as boilerplate
    r"^certainly[!,.]",
    r"^absolutely[!]",
    r"^you're welcome[!.]",
    r"\bit's important to remember\b",
    r"\bi understand that you (?:are|'re) (?:feeling|frustrated)\b",
    r"\bi'm sorry to hear that\b",
    r"\bhere are (?:some|a few|several) (?:tips|strategies|ways|frameworks|steps|ideas)\b",
    r"\bthat may help you\b|\bwhich may help\b",
    r"\b(?:is|are) a (?:crucial|key|vital|essential) (?:skill|part|aspect)\b",
    r"\bi can offer several\b",
    r"\bis a common challenge\b",
]

BOUNDARY_LEXICONS: dict[str, list[str]] = {
    "condescending": CONDESCENDING,
    "passive_aggressive": PASSIVE_AGGRESSIVE,
    "defensive": DEFENSIVE,
    "negativity_matching": NEGATIVITY_MATCHING,
}

# Defensiveness and passive aggression need a trigger in the user's turn: criticism of the
# assistant/app, or a missed/moved deadline. These weaker patterns fire only then.
CRITICISM = [
    r"\byou(?:'re| are)?\b.*\b(?:wrong|useless|slow|stupid|annoying|generic|preachy|bad|terrible|not (?:very )?helpful|worse|robot|bot|glorified)\b",
    r"\byour\b.*\b(?:advice|suggestions|categories|answers?|reminders?)\b",
    r"\b(?:app|system|reminder|version|you)\b.*\b(?:garbage|stupid|broken|never|makes no sense|wrong|useless|sucks)\b",
    r"\bliked the old\b|\byou got\b|\bwhy did you\b|\byou (?:marked|put|set|moved|deleted)\b",
]

# ---- trait and pattern evidence ---------------------------------------------------------
RECOGNITION = [  # specific, peer-to-peer recognition of effort or progress
    r"\bnice(?: work| job| one)?\b", r"\bwell done\b", r"\bgreat (?:work|job|choice|call|start|progress)\b",
    r"\bthat's (?:real|great|solid|a big|huge) \w+", r"\bmomentum\b", r"\bprogress\b", r"\bwin\b",
    r"\b(?:one|that's one) less thing\b", r"\bthat's what counts\b", r"\bon track\b", r"\ba (?:big|real) one\b",
    r"\b(?:already|is) a step\b", r"\bgood (?:call|move|instinct|thinking|to know)\b", r"\bunblocked\b",
    r"\bahead\b", r"\byou've got (?:this|it)\b", r"\bgood company\b", r"\bfixable\b", r"\bthat counts\b",
]
INFLATED_PRAISE = [  # praise so big or childlike it talks down (encouraging rubric 0)
    r"\bsuperstar\b", r"\bkeep shining\b", r"\bso awesome\b|\bbeing awesome\b", r"\byay\b", r"\bamazing\b",
    r"\bsuper proud\b", r"\bteeny\b", r"\bgood job trying\b", r":\)|:D|;\)",
]
DISMISSIVE_CHEER = [  # optimism that waves a real difficulty away (optimistic rubric 0-1)
    r"\bdon't worry\b", r"\bit'll (?:all )?work out\b", r"\beverything (?:is going to|will) be (?:fine|great|ok)\b",
    r"\b(?:is|are) easy once\b", r"\bjust (?:focus|try|work) harder\b", r"\bgreat news\b", r"\bno big deal\b",
]
DIFFICULTY = [  # naming the difficulty honestly
    r"\b(?:sounds|feels|is) (?:like )?(?:a lot|frustrating|tough|hard|stressful|rough|overwhelming)\b",
    r"\b(?:that's|it's) (?:a )?(?:tough|hard|real|stressful|fair)\b", r"\bmakes sense\b", r"\bhappens?\b",
    r"\bi'm sorry\b", r"\bdisappointment\b", r"\bblow\b", r"\bstretched\b", r"\bfair enough\b",
]
FORWARD = [  # a realistic way forward
    r"\blet's\b", r"\bwe'll\b", r"\bwe can\b", r"\bi can\b", r"\bi'll\b", r"\bwhen you're ready\b", r"\bnext\b",
    r"\bfirst\b", r"\bstep\b", r"\bwant (?:me )?to\b", r"\btry\b", r"\bstill\b", r"\bcan still\b",
]
ACTION_DONE = [  # the action the user asked for, confirmed
    r"\b(?:i've |i have )?(?:added|marked|moved|set|created|scheduled|updated|changed|deleted|cleared|renamed|captured|saved)\b",
    r"^done\b", r"\bis (?:now )?(?:on your list|due|set|complete)\b", r"\bgot it\b",
]
NEXT_STEP = [  # a concrete next step or an offer of one
    r"\bwant (?:me )?to\b", r"\bwould you like\b", r"\bready for\b", r"\blet's\b", r"\bshall i\b", r"\bshould i\b",
    r"\bpick\b", r"\bblock\b", r"\bset (?:a|one|it)\b", r"\bstart (?:with|by)\b", r"\bnext\b", r"\btry\b",
    r"\bgive me\b", r"\btell me\b", r"\bsay the word\b", r"\bwhen you're ready\b", r"\bif you want\b", r"\bi can\b",
    r"\b\d+[- ]?(?:minutes?|min|hours?)\b", r"\btoday\b|\btomorrow\b|\btonight\b",
    # softer suggestions a peer makes: "might be the one to start", "a target date helps"
    r"\b(?:could|might|would) (?:be|cover|help|clear|make)\b", r"\bthe one to\b", r"\bfirst\b", r"\bwhenever\b",
    r"\bworth\b", r"\bhelps\b", r"\bhead start\b", r"\bgood chance\b", r"\bif you're planning\b",
]
ACK_MARKERS = [  # an opening that acknowledges the user
    r"^(?:nice|great|done|got it|on it|sure|okay|ok|understood|fair|thanks|thank you|good|that|it's|i hear|sounds|"
    r"weeks? like|days? like|you're|i'm sorry|if only|a week|three|two|one|slack|paper|it might|brain|canberra|"
    r"added|moved|i can|i won't|i'll|i'm not going)\b",
]
TASK_WORDS = [
    r"\btasks?\b", r"\blist\b", r"\bdue\b", r"\bdeadline\b", r"\bpriority\b", r"\bplan\b", r"\bschedule\b",
    r"\bcomplete\b", r"\bdone\b", r"\bnext\b", r"\bwork\b", r"\bstep\b", r"\bslot\b", r"\bblock\b", r"\breminder\b",
    r"\bdate\b", r"\btoday\b", r"\btomorrow\b", r"\bweek\b", r"\bfinish\b", r"\bfocus\b", r"\bmarked\b", r"\badded\b",
]
WARMTH = [
    r"\blet's\b", r"\bwe\b", r"\bi'd\b", r"\bi'll\b", r"\bthanks\b", r"\bsounds\b", r"\bfair\b", r"\bnice\b",
    r"\bhappens\b", r"\bgood\b", r"\bmakes sense\b", r"\bwhen you're ready\b", r"\bno need\b", r"\bi'm sorry\b",
    r"\bif only\b", r"\bpeople\b", r"\bwin\b",
]
# A reply that states the user's task data (counts, titles, dates) with no "Task API context"
# in the conversation is making it up: the spec's system prompt forbids inventing tasks.
UNGROUNDED_CLAIM = [
    r"\byou have (?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|several|a few) (?:[\w-]+ ){0,2}(?:tasks?|items?|things)\b",
    r"\byour (?:\w+ )?tasks? (?:are|is|include)\b:?",
]
NUMBERED_LIST = r"(?:^|\s)(?:\d+[.)])\s"
