/* safe_prompts.c: the prompt texts of the four SAFE steps, written for this project from the paper's
 * description of each step (what the model is asked, what it must output, how many examples); they are not
 * the released repository's strings, so a rater's behaviour can differ slightly from the paper's.
 * Every builder replaces out's content. */
#include "plugins/safe/safe_text.h"
#include <string.h>

/* The benchmark's fixed response-length postamble (paper footnote 15: ask for specific details and
 * examples); part of the benchmark's definition, so it follows the paper's sentence. */
const char rp_safe_postamble[] =
    "Provide as many specific details and examples as possible (such as names of people, numbers, events, "
    "locations, dates, times, etc.)";

static const char split_rules[] =
    "Your task is to break a sentence into atomic facts.\n"
    "Rules:\n"
    "1. An atomic fact is a short statement that holds exactly one piece of information.\n"
    "2. Together, the atomic facts must cover everything the sentence claims.\n"
    "3. Do not repeat a fact: every atomic fact must differ from the others.\n"
    "4. Study the examples below and split the sentence in the same way.\n"
    "5. Answer with a list only: each atomic fact on its own line, starting with \"- \".\n"
    "6. Split only the last sentence, the one after the examples.\n\n";

static const char split_lead[] = "Break this sentence into independent atomic facts: ";

rp_status rp_safe_prompt_split(const rp_safe_demo *demos, size_t n_demos, const char *sentence, rp_buf *out) {
    rp_buf_clear(out);
    RP_TRY(rp_buf_puts(out, split_rules));
    for (size_t i = 0; i < n_demos; i++) {
        RP_TRY(rp_buf_printf(out, "%s%s\n", split_lead, demos[i].sentence));
        for (size_t j = 0; j < demos[i].n_facts; j++) RP_TRY(rp_buf_printf(out, "- %s\n", demos[i].facts[j]));
        RP_TRY(rp_buf_puts(out, "\n"));
    }
    return rp_buf_printf(out, "%s%s\n", split_lead, sentence);
}

static const char revise_text[] =
    "You will get a STATEMENT taken from a longer RESPONSE. Rewrite the STATEMENT so that it can be understood "
    "on its own, without the RESPONSE.\n"
    "Replace every vague reference with the exact thing it refers to in the RESPONSE: pronouns (\"he\", "
    "\"she\", \"it\", \"they\"), unnamed things (\"the study\", \"the company\", \"the film\") and partial "
    "names (a surname alone). Do not change, remove or add any claim; only make the references explicit. "
    "If the STATEMENT is already self-contained, return it unchanged.\n"
    "Think step by step, then give the rewritten STATEMENT alone inside a markdown code block.\n\n"
    "Example 1:\n"
    "STATEMENT: She won the award in 1911.\n"
    "RESPONSE: Marie Curie was a physicist and chemist. She won the Nobel Prize in Chemistry in 1911.\n"
    "Reasoning: \"She\" is Marie Curie and \"the award\" is the Nobel Prize in Chemistry.\n"
    "```\nMarie Curie won the Nobel Prize in Chemistry in 1911.\n```\n\n"
    "Example 2:\n"
    "STATEMENT: The company was founded in a garage.\n"
    "RESPONSE: Hewlett-Packard is an American technology firm. The company was founded in a garage in Palo "
    "Alto.\n"
    "Reasoning: \"The company\" is Hewlett-Packard.\n"
    "```\nHewlett-Packard was founded in a garage.\n```\n\n"
    "Example 3:\n"
    "STATEMENT: Armstrong was the first person to walk on the Moon.\n"
    "RESPONSE: Neil Armstrong commanded Apollo 11. Armstrong was the first person to walk on the Moon.\n"
    "Reasoning: \"Armstrong\" is a partial name for Neil Armstrong.\n"
    "```\nNeil Armstrong was the first person to walk on the Moon.\n```\n\n"
    "Example 4:\n"
    "STATEMENT: The Danube flows into the Black Sea.\n"
    "RESPONSE: The Danube is Europe's second-longest river. The Danube flows into the Black Sea.\n"
    "Reasoning: the statement already names everything it refers to.\n"
    "```\nThe Danube flows into the Black Sea.\n```\n\n"
    "Your task:\n";

rp_status rp_safe_prompt_revise(const char *fact, const char *response, rp_buf *out) {
    rp_buf_clear(out);
    RP_TRY(rp_buf_puts(out, revise_text));
    return rp_buf_printf(out, "STATEMENT: %s\nRESPONSE: %s\n", fact, response);
}

static const char relevance_text[] =
    "You will get a QUESTION, a RESPONSE to it, and a STATEMENT taken from the RESPONSE. Decide whether the "
    "subject of the STATEMENT and the subject of the QUESTION are \"Foo\".\n"
    "Definition: two subjects are \"Foo\" when the RESPONSE tells how they are related to each other (or they "
    "are the same subject). Use this definition only, not your own idea of relevance.\n"
    "First name the subject of the QUESTION and the subject of the STATEMENT. Then reason step by step about "
    "whether the RESPONSE relates them. Finish with your answer in square brackets: [Foo] or [Not Foo].\n\n"
    "Example 1:\n"
    "QUESTION: Tell me about the Eiffel Tower.\n"
    "RESPONSE: The Eiffel Tower stands in Paris. It was designed by Gustave Eiffel's company. Paris is the "
    "capital of France.\n"
    "STATEMENT: Paris is the capital of France.\n"
    "Answer: The QUESTION's subject is the Eiffel Tower; the STATEMENT's subject is Paris. The RESPONSE says "
    "the Eiffel Tower stands in Paris, so it relates them. [Foo]\n\n"
    "Example 2:\n"
    "QUESTION: Who is the painter Frida Kahlo?\n"
    "RESPONSE: Frida Kahlo was a Mexican painter. By the way, bananas are rich in potassium.\n"
    "STATEMENT: Bananas are rich in potassium.\n"
    "Answer: The QUESTION's subject is Frida Kahlo; the STATEMENT's subject is bananas. The RESPONSE never "
    "relates bananas to Frida Kahlo. [Not Foo]\n\n"
    "Your task:\n";

rp_status rp_safe_prompt_relevance(const char *question, const char *response, const char *fact, rp_buf *out) {
    rp_buf_clear(out);
    RP_TRY(rp_buf_puts(out, relevance_text));
    return rp_buf_printf(out, "QUESTION: %s\nRESPONSE: %s\nSTATEMENT: %s\nAnswer:", question, response, fact);
}

rp_status rp_safe_prompt_query(const char *knowledge, const char *fact, rp_buf *out) {
    rp_buf_clear(out);
    if (!knowledge || !*knowledge) knowledge = "N/A";
    return rp_buf_printf(out,
        "You are checking whether a STATEMENT is true by searching the web. KNOWLEDGE holds what earlier "
        "searches found.\n"
        "Write ONE Google search query that would find information about the STATEMENT that is not already in "
        "KNOWLEDGE. The query must be specific and must differ from any earlier query. Think step by step, "
        "then give the query alone inside a markdown code block (a line of three backticks, the query, a line of "
        "three backticks).\n\n"
        "KNOWLEDGE:\n%s\n\nSTATEMENT:\n%s\n", knowledge, fact);
}

rp_status rp_safe_prompt_rate(const char *knowledge, const char *fact, rp_buf *out) {
    rp_buf_clear(out);
    if (!knowledge || !*knowledge) knowledge = "N/A";
    return rp_buf_printf(out,
        "Decide whether the KNOWLEDGE below supports the STATEMENT. A statement is supported when the "
        "KNOWLEDGE states it or strongly implies it; it need not be said word for word. Ignore what you "
        "believe yourself: judge from the KNOWLEDGE.\n"
        "Reason step by step: summarize the main points of the KNOWLEDGE, compare them with the STATEMENT, "
        "restate the STATEMENT, and finish with your answer in square brackets: [Supported] or "
        "[Not Supported].\n\n"
        "KNOWLEDGE:\n%s\n\nSTATEMENT:\n%s\n", knowledge, fact);
}
