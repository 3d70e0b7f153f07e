// Package acceptance holds tarn's end-to-end tests. They start the real
// tarn binary (TARN_BIN, built by `make acceptance`) as a grid of separate
// processes and drive it with real clients and real faults. They carry the
// build tag "acceptance" so that `make test` stays quick; `make acceptance`
// runs them.
package acceptance
