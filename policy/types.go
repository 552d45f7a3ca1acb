package policy

import "fmt"

// The task types a policy file configures. Long-form writing is
// long_form_document, the name job specs already use.
const (
	TypeLongForm        = "long_form_document"
	TypeCode            = "code"
	TypeDataProcessing  = "data_processing"
	TypeCustomerSupport = "customer_support"
	TypeMedical         = "medical"
	TypeLegal           = "legal"
	TypeFinancial       = "financial"
	TypeOther           = "other"
)

// TaskTypes lists every task type in a stable order.
var TaskTypes = []string{TypeLongForm, TypeCode, TypeDataProcessing, TypeCustomerSupport,
	TypeMedical, TypeLegal, TypeFinancial, TypeOther}

// KnownType reports whether t is one of TaskTypes.
func KnownType(t string) bool {
	_, ok := intrinsicRisk[t]
	return ok
}

// Risk orders task types by how strict their policy should be: when the
// classifier cannot tell two types apart, the riskier one's policy applies.
type Risk int

// Risk levels, from least to most strict.
const (
	RiskLow Risk = iota + 1
	RiskMedium
	RiskHigh
)

// String returns low, medium or high, as policy files spell them.
func (r Risk) String() string {
	switch r {
	case RiskLow:
		return "low"
	case RiskMedium:
		return "medium"
	case RiskHigh:
		return "high"
	}
	return fmt.Sprintf("risk(%d)", int(r))
}

// ParseRisk parses low, medium or high.
func ParseRisk(s string) (Risk, error) {
	switch s {
	case "low":
		return RiskLow, nil
	case "medium":
		return RiskMedium, nil
	case "high":
		return RiskHigh, nil
	}
	return 0, fmt.Errorf("unknown risk %q (want low, medium or high)", s)
}

// intrinsicRisk is each type's risk when a file does not say: the domains
// where a wrong answer hurts people are high.
var intrinsicRisk = map[string]Risk{
	TypeLongForm: RiskLow, TypeCode: RiskMedium, TypeDataProcessing: RiskLow,
	TypeCustomerSupport: RiskLow, TypeMedical: RiskHigh, TypeLegal: RiskHigh,
	TypeFinancial: RiskHigh, TypeOther: RiskMedium,
}
