// Specs shared by the iso8583 tests (not a test file: importing it registers no tests).
import type { MessageSpec } from '../src/index.js';

/** A small spec for the tests: one field per encoding combination. */
export const TEST_SPEC: MessageSpec = {
  name: 'test-mix',
  mti: { encoding: 'ebcdic' },
  bitmap: { encoding: 'binary', secondary: false },
  fields: {
    '2': {
      name: 'pan bcd left F',
      type: 'n',
      length: { kind: 'LL', max: 19, prefix: 'binary' },
      encoding: 'bcd',
      bcd: { justify: 'left', pad: 'F' },
    },
    '3': { name: 'n3 bcd right', type: 'n', length: { kind: 'fixed', max: 3 }, encoding: 'bcd' },
    '4': {
      name: 'n3 bcd left',
      type: 'n',
      length: { kind: 'fixed', max: 3 },
      encoding: 'bcd',
      bcd: { justify: 'left', pad: '0' },
    },
    '5': {
      name: 'ebcdic text',
      type: 'ans',
      length: { kind: 'LLL', max: 999, prefix: 'ebcdic' },
      encoding: 'ebcdic',
    },
    '6': {
      name: 'bcd LLLL',
      type: 'ans',
      length: { kind: 'LLLL', max: 9999, prefix: 'bcd' },
      encoding: 'ascii',
    },
    '7': {
      name: 'binary LLL',
      type: 'b',
      length: { kind: 'LLL', max: 300, prefix: 'binary' },
      encoding: 'binary',
    },
    '8': { name: 'hex LL', type: 'b', length: { kind: 'LL', max: 16, prefix: 'ascii' }, encoding: 'hex' },
    '9': { name: 'x+n ascii', type: 'x+n', length: { kind: 'fixed', max: 9 }, encoding: 'ascii' },
    '10': {
      name: 'track bcd',
      type: 'z',
      length: { kind: 'LL', max: 37, prefix: 'bcd' },
      encoding: 'bcd',
      bcd: { justify: 'left', pad: 'F' },
    },
    '11': {
      name: 'bytes unit',
      type: 'n',
      length: { kind: 'LL', max: 10, prefix: 'bcd', unit: 'bytes' },
      encoding: 'bcd',
      bcd: { justify: 'left', pad: 'F' },
    },
    '12': { name: 'an fixed', type: 'an', length: { kind: 'fixed', max: 6 }, encoding: 'ascii' },
    '13': { name: 'n ebcdic', type: 'n', length: { kind: 'fixed', max: 4 }, encoding: 'ebcdic' },
    '14': { name: 'expiry', type: 'n', length: { kind: 'fixed', max: 4 }, encoding: 'bcd' },
    '60': {
      name: 'cup 60',
      type: 'n',
      length: { kind: 'LLL', max: 17, prefix: 'bcd' },
      encoding: 'bcd',
      bcd: { justify: 'left', pad: '0' },
      subfields: {
        kind: 'positional',
        fields: {
          '1': { name: 'type', length: 2 },
          '2': { name: 'batch', length: 6 },
          '3': { name: 'netmgmt', length: 3 },
          '4': { name: 'cap', length: 1 },
          '5': { name: 'ic', length: 1 },
        },
      },
    },
    '62': {
      name: 'binary subfields',
      type: 'b',
      length: { kind: 'LLL', max: 100, prefix: 'bcd' },
      encoding: 'binary',
      subfields: {
        kind: 'positional',
        fields: {
          '1': { name: 'key', length: 4, sensitive: true },
          '2': { name: 'kcv', length: { kind: 'LL', max: 8 } },
        },
      },
    },
    '63': {
      name: 'text subfields',
      type: 'ans',
      length: { kind: 'LLL', max: 163, prefix: 'bcd' },
      encoding: 'ascii',
      subfields: {
        kind: 'positional',
        fields: {
          '1': { name: 'operator', length: 3 },
          '2': { name: 'var', length: { kind: 'LL', max: 20 } },
          '3': { name: 'rest', length: { kind: 'rest', max: 50 } },
        },
      },
    },
  },
};
