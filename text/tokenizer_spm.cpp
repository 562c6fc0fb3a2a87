// tokenizer_spm.cpp - sk_tokenizer over libsentencepiece (see tokenizer.h).
//
// The only C++ in the text module: a thin shim. Every entry point catches all
// C++ exceptions (bad_alloc, anything the library throws) and turns them into
// an sk_status whose message names the model file, so nothing unwinds into C.
#include "tokenizer.h"

#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

struct sk_tokenizer {
    sentencepiece::SentencePieceProcessor sp;
    std::string source;
    int32_t pad = -1, eos = -1, unk = -1;
};

// Special id: the model's trainer_spec value, else the conventional T5 piece.
static int32_t special_id(const sentencepiece::SentencePieceProcessor &sp, int from_spec,
                          const char *piece)
{
    if (from_spec >= 0 && from_spec < sp.GetPieceSize()) return from_spec;
    int id = sp.PieceToId(piece);
    if (id >= 0 && id < sp.GetPieceSize() && sp.IdToPiece(id) == piece) return id;
    return -1;
}

static sk_status finish_load(std::unique_ptr<sk_tokenizer> &t, sk_tokenizer **out)
{
    auto &sp = t->sp;
    t->pad = special_id(sp, sp.pad_id(), "<pad>");
    t->eos = special_id(sp, sp.eos_id(), "</s>");
    t->unk = special_id(sp, sp.unk_id(), "<unk>");
    if (t->eos < 0 || t->pad < 0)
        return SK_ERR(SK_E_FORMAT,
                      "tokenizer '%s': the model defines no %s id (trainer_spec %s_id < 0 and no "
                      "'%s' piece); umT5's spiece.model has pad 0 and eos 1",
                      t->source.c_str(), t->eos < 0 ? "eos" : "pad", t->eos < 0 ? "eos" : "pad",
                      t->eos < 0 ? "</s>" : "<pad>");
    *out = t.release();
    return SK_OK;
}

extern "C" sk_status sk_tokenizer_load(const char *path, sk_tokenizer **out)
{
    if (!out) return SK_ERR(SK_E_INVALID_ARG, "tokenizer: NULL output");
    *out = nullptr;
    if (!path || !*path) return SK_ERR(SK_E_INVALID_ARG, "tokenizer: no model path given");
    try {
        auto t = std::make_unique<sk_tokenizer>();
        t->source = path;
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) // google/umt5-xxl/ as shipped
            t->source = std::string(path) + "/spiece.model";
        path = t->source.c_str();
        auto s = t->sp.Load(path);
        if (!s.ok())
            return SK_ERR(SK_E_IO,
                          "tokenizer '%s': sentencepiece could not load it: %s; expected a "
                          "SentencePiece model such as google/umt5-xxl/spiece.model",
                          path, s.ToString().c_str());
        return finish_load(t, out);
    } catch (const std::bad_alloc &) {
        return SK_ERR(SK_E_OOM, "tokenizer '%s': out of memory while loading", path);
    } catch (const std::exception &e) {
        return SK_ERR(SK_E_FORMAT, "tokenizer '%s': %s", path, e.what());
    } catch (...) {
        return SK_ERR(SK_E_INTERNAL, "tokenizer '%s': unknown C++ exception while loading", path);
    }
}

extern "C" sk_status sk_tokenizer_load_blob(const void *data, size_t size, const char *label,
                                            sk_tokenizer **out)
{
    if (!out) return SK_ERR(SK_E_INVALID_ARG, "tokenizer: NULL output");
    *out = nullptr;
    const char *lab = label ? label : "(memory)";
    if (!data || size == 0)
        return SK_ERR(SK_E_INVALID_ARG, "tokenizer '%s': empty serialized model", lab);
    try {
        auto t = std::make_unique<sk_tokenizer>();
        t->source = lab;
        auto s = t->sp.LoadFromSerializedProto(
            absl::string_view(static_cast<const char *>(data), size));
        if (!s.ok())
            return SK_ERR(SK_E_FORMAT, "tokenizer '%s': not a SentencePiece model (%zu bytes): %s",
                          lab, size, s.ToString().c_str());
        return finish_load(t, out);
    } catch (const std::bad_alloc &) {
        return SK_ERR(SK_E_OOM, "tokenizer '%s': out of memory while loading", lab);
    } catch (const std::exception &e) {
        return SK_ERR(SK_E_FORMAT, "tokenizer '%s': %s", lab, e.what());
    } catch (...) {
        return SK_ERR(SK_E_INTERNAL, "tokenizer '%s': unknown C++ exception while loading", lab);
    }
}

extern "C" void sk_tokenizer_free(sk_tokenizer **t)
{
    if (!t || !*t) return;
    delete *t;
    *t = nullptr;
}

extern "C" sk_status sk_tokenizer_encode(const sk_tokenizer *t, const char *text, int32_t **ids,
                                         size_t *n)
{
    if (!t || !text || !ids || !n) return SK_ERR(SK_E_INVALID_ARG, "tokenizer: NULL argument");
    *ids = nullptr;
    *n = 0;
    try {
        std::vector<int> v;
        auto s = t->sp.Encode(absl::string_view(text, std::strlen(text)), &v);
        if (!s.ok())
            return SK_ERR(SK_E_INVALID_ARG, "tokenizer '%s': encoding failed: %s",
                          t->source.c_str(), s.ToString().c_str());
        int32_t *p = static_cast<int32_t *>(std::malloc((v.size() ? v.size() : 1) * sizeof *p));
        if (!p)
            return SK_ERR(SK_E_OOM, "tokenizer '%s': out of memory for %zu ids",
                          t->source.c_str(), v.size());
        for (size_t i = 0; i < v.size(); i++) p[i] = v[i];
        *ids = p;
        *n = v.size();
        return SK_OK;
    } catch (const std::bad_alloc &) {
        return SK_ERR(SK_E_OOM, "tokenizer '%s': out of memory while encoding", t->source.c_str());
    } catch (const std::exception &e) {
        return SK_ERR(SK_E_INTERNAL, "tokenizer '%s': %s", t->source.c_str(), e.what());
    } catch (...) {
        return SK_ERR(SK_E_INTERNAL, "tokenizer '%s': unknown C++ exception while encoding",
                      t->source.c_str());
    }
}

extern "C" int32_t sk_tokenizer_pad_id(const sk_tokenizer *t) { return t ? t->pad : -1; }
extern "C" int32_t sk_tokenizer_eos_id(const sk_tokenizer *t) { return t ? t->eos : -1; }
extern "C" int32_t sk_tokenizer_unk_id(const sk_tokenizer *t) { return t ? t->unk : -1; }
extern "C" int64_t sk_tokenizer_vocab_size(const sk_tokenizer *t)
{
    return t ? t->sp.GetPieceSize() : 0;
}
extern "C" const char *sk_tokenizer_source(const sk_tokenizer *t)
{
    return t ? t->source.c_str() : "";
}

extern "C" const char *sk_tokenizer_piece(const sk_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || id >= t->sp.GetPieceSize()) return nullptr;
    try {
        return t->sp.IdToPiece(id).c_str(); // a reference into the model: stable
    } catch (...) {
        return nullptr;
    }
}
