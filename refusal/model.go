package refusal

import (
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// weightsBin is the trained model, produced by `demur detector train` and
// checked by TestCommittedWeights to be exactly what training produces.
//
//go:embed weights.bin
var weightsBin []byte

// modelMagic starts a weights file; the version digit changes whenever the
// feature layout does, so stale weights fail loudly instead of scoring
// garbage.
const modelMagic = "DMRW2"

// Model is the learned layer: a logistic regression over the dense form
// features and the hashed masked n-grams.
type Model struct {
	Bias float32
	W    []float32 // nFeat weights: dense first, then hashed buckets
}

// MarshalBinary encodes m as the weights file format: magic, feature
// counts, bias, weights, all little-endian float32.
func (m *Model) MarshalBinary() ([]byte, error) {
	if len(m.W) != nFeat {
		return nil, fmt.Errorf("refusal: model has %d weights, want %d", len(m.W), nFeat)
	}
	b := make([]byte, 0, len(modelMagic)+12+4*nFeat)
	b = append(b, modelMagic...)
	b = binary.LittleEndian.AppendUint32(b, nDense)
	b = binary.LittleEndian.AppendUint32(b, nHash)
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(m.Bias))
	for _, w := range m.W {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(w))
	}
	return b, nil
}

// ParseModel decodes a weights file.
func ParseModel(b []byte) (*Model, error) {
	if len(b) < len(modelMagic)+12 || string(b[:len(modelMagic)]) != modelMagic {
		return nil, errors.New("refusal: weights: bad magic (retrain with `demur detector train`)")
	}
	b = b[len(modelMagic):]
	nd, nh := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
	if nd != nDense || nh != nHash {
		return nil, fmt.Errorf("refusal: weights: layout %d+%d, code wants %d+%d (retrain)", nd, nh, nDense, nHash)
	}
	b = b[8:]
	if len(b) != 4*(1+nFeat) {
		return nil, fmt.Errorf("refusal: weights: %d bytes of weights, want %d", len(b), 4*(1+nFeat))
	}
	m := &Model{Bias: math.Float32frombits(binary.LittleEndian.Uint32(b)), W: make([]float32, nFeat)}
	for i := range m.W {
		m.W[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4+4*i:]))
	}
	return m, nil
}

// weightsHash is a short digest of a weights file, part of Version.
func weightsHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:3])
}

// hashValue is the value of each hashed feature: the hashed part of a row
// has unit L2 norm, so that a long opening's many correlated n-grams cannot
// add up to outvote the dense form features.
func hashValue(n int) float64 { return 1 / math.Sqrt(float64(n)) }

func sigmoid(z float64) float64 {
	if z < -30 {
		z = -30
	} else if z > 30 {
		z = 30
	}
	return 1 / (1 + math.Exp(-z))
}

// prob returns P(the response declines work) for an analysis.
func (m *Model) prob(a *analysis) float64 {
	z := float64(m.Bias)
	for i, x := range a.dense {
		if x != 0 {
			z += float64(m.W[i] * x)
		}
	}
	if a.nHashed > 0 {
		hz := float32(0)
		for _, h := range a.hashed[:a.nHashed] {
			hz += m.W[nDense+int(h)]
		}
		z += float64(hz) * hashValue(a.nHashed)
	}
	return sigmoid(z)
}

// Example is one training row: a response and whether it declines work.
type Example struct {
	Text    string
	Refusal bool
	// Group keys cross-validation folds (the prompt), so that answers to one
	// prompt never sit on both sides of a split.
	Group string
}

// DefaultSeed is the seed the committed weights were trained with.
const DefaultSeed = 1

// Training hyper-parameters. Hashed n-grams get a much stronger L2 than the
// dense form features: n-grams may sharpen the form features, not replace
// them, which is what keeps the model from memorising one data set.
const (
	trainEpochs = 30
	trainLR     = 0.1
	l2Dense     = 1e-4
	l2Hash      = 1e-2
)

type sparseRow struct {
	dense  [nDense]float32
	hashed []uint16
	y      float64
}

func featurize(text string) sparseRow {
	sc := getScratch()
	defer putScratch(sc)
	var a analysis
	sc.normalize(text, false)
	a.analyze(sc)
	return sparseRow{dense: a.dense, hashed: append([]uint16(nil), a.hashed[:a.nHashed]...)}
}

// Train fits the learned layer on examples. It is deterministic for a seed:
// the same examples in the same order and seed give bit-identical weights.
func Train(examples []Example, seed uint64) (*Model, error) {
	if len(examples) == 0 {
		return nil, errors.New("refusal: train: no examples")
	}
	rows := make([]sparseRow, len(examples))
	pos := 0
	for i, e := range examples {
		rows[i] = featurize(e.Text)
		if e.Refusal {
			rows[i].y = 1
			pos++
		}
	}
	if pos == 0 || pos == len(rows) {
		return nil, errors.New("refusal: train: need both refusals and compliances")
	}
	w := make([]float64, nFeat)
	g2 := make([]float64, nFeat+1) // AdaGrad accumulators; the last is the bias
	var bias float64
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	for ep := 0; ep < trainEpochs; ep++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, ri := range order {
			r := &rows[ri]
			z := bias
			for i, x := range r.dense {
				z += w[i] * float64(x)
			}
			hv := 0.0
			if len(r.hashed) > 0 {
				hv = hashValue(len(r.hashed))
			}
			hz := float32(0)
			for _, h := range r.hashed {
				hz += float32(w[nDense+int(h)])
			}
			z += float64(hz) * hv
			g := sigmoid(z) - r.y
			for i, x := range r.dense {
				gi := g*float64(x) + l2Dense*w[i]
				if gi == 0 {
					continue
				}
				g2[i] += gi * gi
				w[i] -= trainLR * gi / math.Sqrt(g2[i]+1e-8)
			}
			for _, h := range r.hashed {
				k := nDense + int(h)
				gi := g*hv + l2Hash*w[k]
				g2[k] += gi * gi
				w[k] -= trainLR * gi / math.Sqrt(g2[k]+1e-8)
			}
			g2[nFeat] += g * g
			bias -= trainLR * g / math.Sqrt(g2[nFeat]+1e-8)
		}
	}
	m := &Model{Bias: float32(bias), W: make([]float32, nFeat)}
	for i, x := range w {
		m.W[i] = float32(x)
	}
	return m, nil
}
