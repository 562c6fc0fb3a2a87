/* empty_unit.c - placeholder so a library with no sources yet still links. */
typedef int sk_empty_unit_;
