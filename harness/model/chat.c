/* chat.c: turning a conversation into the prompt text an instruct model was trained on. The style is
 * detected from the GGUF's Jinja chat template by what it writes (we do not run Jinja): ChatML
 * (<|im_start|>role\ncontent<|im_end|>\n), Llama-2 ([INST] ... [/INST] with <<SYS>>), or a plain
 * "Role: content" transcript. A default system prompt written literally in a ChatML template (as SmolLM2's
 * "You are a helpful AI assistant named SmolLM, trained by Hugging Face") is used when the conversation
 * has no system message. */
#include "model/tokenizer_impl.h"
#include <stdlib.h>
#include <string.h>

/* Inspect tokenizer.chat_template (NULL when the model has none). */
rp_status rp_chat_detect(rp_tokenizer *t, const char *tmpl) {
    t->chat = RP_CHAT_PLAIN;
    free(t->chat_system);
    t->chat_system = NULL;
    const char *sys = "";
    size_t sys_len = 0;
    if (tmpl && strstr(tmpl, "<|im_start|>")) {
        t->chat = RP_CHAT_CHATML;
        const char *marker = "<|im_start|>system\n";
        const char *p = strstr(tmpl, marker);
        if (p) {
            p += strlen(marker);
            const char *e = strstr(p, "<|im_end|>");
            /* a literal prompt, not a Jinja expression such as ' + message['content'] + ' */
            if (e && !memchr(p, '\'', (size_t)(e - p)) && !memchr(p, '{', (size_t)(e - p))) { sys = p; sys_len = (size_t)(e - p); }
        }
    } else if (tmpl && strstr(tmpl, "[INST]")) {
        t->chat = RP_CHAT_LLAMA2;
    }
    t->chat_system = malloc(sys_len + 1);
    if (!t->chat_system) return rp_fail(RP_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(t->chat_system, sys, sys_len);
    t->chat_system[sys_len] = 0;
    return RP_OK;
}

/* The detected chat style. */
rp_chat_style rp_tokenizer_chat_style(const rp_tokenizer *t) { return t->chat; }

/* The default system prompt ("" when none). */
const char *rp_tokenizer_chat_default_system(const rp_tokenizer *t) { return t->chat_system ? t->chat_system : ""; }

static rp_status check_msgs(const rp_chat_msg *m, int n) {
    for (int i = 0; i < n; i++) {
        if (!m[i].role || !m[i].content) return rp_fail(RP_ERR_INVAL, "chat message %d: role and content are required", i);
        if (strcmp(m[i].role, "system") && strcmp(m[i].role, "user") && strcmp(m[i].role, "assistant"))
            return rp_fail(RP_ERR_INVAL, "chat message %d: role \"%s\" (expected system, user or assistant)", i, m[i].role);
    }
    return RP_OK;
}

/* Append the prompt for a conversation to out. */
rp_status rp_tokenizer_chat_format(const rp_tokenizer *t, const rp_chat_msg *m, int n, int add_assistant, rp_buf *out) {
    RP_TRY(check_msgs(m, n));
    int has_system = n > 0 && strcmp(m[0].role, "system") == 0;
    switch (t->chat) {
    case RP_CHAT_CHATML:
        if (!has_system && t->chat_system && t->chat_system[0])
            RP_TRY(rp_buf_printf(out, "<|im_start|>system\n%s<|im_end|>\n", t->chat_system));
        for (int i = 0; i < n; i++) RP_TRY(rp_buf_printf(out, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content));
        if (add_assistant) RP_TRY(rp_buf_puts(out, "<|im_start|>assistant\n"));
        return RP_OK;
    case RP_CHAT_LLAMA2: {
        /* <s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] user [/INST] */
        const char *sys = has_system ? m[0].content : NULL;
        int open = 0;
        for (int i = has_system; i < n; i++) {
            if (strcmp(m[i].role, "user") == 0) {
                RP_TRY(rp_buf_puts(out, "<s>[INST] "));
                if (sys) { RP_TRY(rp_buf_printf(out, "<<SYS>>\n%s\n<</SYS>>\n\n", sys)); sys = NULL; }
                RP_TRY(rp_buf_printf(out, "%s [/INST]", m[i].content));
                open = 1;
            } else if (strcmp(m[i].role, "assistant") == 0) {
                RP_TRY(rp_buf_printf(out, " %s </s>", m[i].content));
                open = 0;
            } else {
                RP_TRY(rp_buf_printf(out, "<s>[INST] <<SYS>>\n%s\n<</SYS>>\n\n [/INST]", m[i].content));
            }
        }
        (void)open;
        return RP_OK;
    }
    case RP_CHAT_PLAIN:
        for (int i = 0; i < n; i++) {
            const char *r = m[i].role;
            RP_TRY(rp_buf_printf(out, "%s: %s\n", strcmp(r, "system") == 0 ? "System" : strcmp(r, "user") == 0 ? "User" : "Assistant", m[i].content));
        }
        if (add_assistant) RP_TRY(rp_buf_puts(out, "Assistant:"));
        return RP_OK;
    }
    return RP_OK;
}
