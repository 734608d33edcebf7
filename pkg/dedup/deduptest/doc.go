// Package deduptest is the conformance suite of dedup stores: every
// [dedup.Store] implementation runs [Run] in its tests, so that
// [dedup.Memory] keeps behaving like [dedup.Postgres] and a unit test on the
// first means what it would mean on the second.
//
// A test runs the suite with a constructor of empty harnesses:
//
//	func TestMyStoreConformance(t *testing.T) {
//		deduptest.Run(t, func(t *testing.T) deduptest.Harness {
//			s := newMyStore(t)
//			return deduptest.Harness{Store: s, Age: s.backdate}
//		})
//	}
package deduptest
