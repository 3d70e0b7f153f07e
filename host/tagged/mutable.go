package tagged

// The tags of every hash in the mutable-file format (docs/formats.md,
// "Mutable files"). Kept apart from the immutable tags so that each format's
// list reads whole; the same rule holds: never reuse a tag.
const (
	MutSigningKey    = "tarn 2026 mut signing key v1"
	MutWriteKey      = "tarn 2026 mut write key v1"
	MutReadKey       = "tarn 2026 mut read key v1"
	MutPublicKey     = "tarn 2026 mut public key v1"
	MutStorageIndex  = "tarn 2026 mut storage index v1"
	MutDataKey       = "tarn 2026 mut data key v1"
	MutCiphertext    = "tarn 2026 mut ciphertext v1"
	MutBlock         = "tarn 2026 mut block v1"
	MutShareTreeNode = "tarn 2026 mut share tree node v1"
	MutSignedHeader  = "tarn 2026 mut signed header v1"
)
